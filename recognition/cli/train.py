"""`keyface train APPROACH` and `keyface calibrate`: identity models trained on LFW DevTrain people only."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.files import install_copy
from keyface.data.paths import data_root, models_dir, user_dir
from keyface.runtime.networks import META_ENTRY, file_version, read_metadata
from keyface.recognition.approaches.calibration import calibrate, held_out_people, read_threshold, rewrite_metadata
from keyface.recognition.approaches.registry import (EMBEDDER_NAMES, REGISTRY, TRAINABLE, find_model_file,
                                                     load_embedder, registered)
from keyface.recognition.approaches.trainers import TrainSettings
from keyface.recognition.cli.commands import count, count_or_zero
from keyface.recognition.training.items import stranger_items, training_items

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface train APPROACH` and `keyface calibrate`."""
    p = sub.add_parser("train", help="train an embedder on LFW DevTrain people: " + " | ".join(TRAINABLE))
    p.add_argument("approach", choices=TRAINABLE, help="what to train: " + "; ".join(
        f"{name}: {REGISTRY[name].label}" for name in TRAINABLE))
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--folders", metavar="DIR", help="train on a folder-per-person tree instead of LFW (" +
                   ", ".join(n for n in TRAINABLE if REGISTRY[n].folders) + ")")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model to start from and align with (default: shipped)")
    p.add_argument("--min-photos", type=count, default=2, help="DevTrain people with at least this many photos")
    p.add_argument("--no-youtube", action="store_true", help="leave out youtube_faces_68 frames of DevTrain people")
    p.add_argument("--limit-people", type=count, help="first N people only (quick trials)")
    _settings_flags(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("calibrate", help="store an embedder's 'unknown' and clustering thresholds, chosen on "
                       "LFW DevTrain people held out of its training")
    p.add_argument("embedder", help=" | ".join(EMBEDDER_NAMES))
    p.add_argument("--embedder-model", help="the model file to calibrate (default: the one the embedder loads)")
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model to align with (default: shipped)")
    p.set_defaults(func=cmd_calibrate)


def _settings_flags(p) -> None:
    """The flags that become TrainSettings; each approach reads its own (the registry says which)."""
    p.add_argument("--head-epochs", type=count_or_zero, help="keypoints: epochs of the new head alone, the network "
                   "frozen (default: 4)")
    p.add_argument("--finetune-epochs", type=count_or_zero, help="keypoints, inception: epochs of fine-tuning the whole "
                   "network (default: 12)")
    p.add_argument("--weights", help="inception: imagenet (default) | none | a .keras checkpoint | a Keras "
                   "InceptionV3 .h5 file")
    p.add_argument("--input-size", type=count, help="inception, facenet: crop size (default: 160 and 96)")
    p.add_argument("--epochs", type=count, help="facenet, facenet-dlib: epochs (default: 30, and 4 from the source)")
    p.add_argument("--lr", type=float, help="facenet, facenet-dlib: learning rate (default: 1e-3, and 1e-5)")
    p.add_argument("--mining", choices=["semi-hard", "batch-hard", "batch-all"],
                   help="facenet, facenet-dlib: triplet mining inside each P x K batch (default: batch-hard)")
    p.add_argument("--source", choices=["none", "dlib-resnet"],
                   help="facenet: `--source dlib-resnet` is the same as `keyface train facenet-dlib`")


SETTING_FLAGS = ("head_epochs", "finetune_epochs", "weights", "input_size", "epochs", "lr", "mining")


def train_settings(args, name: str) -> TrainSettings:
    """The run's settings from the flags; a flag the approach does not read is refused, not ignored."""
    from keyface.keypoints.predictor import resolve_model
    reg = registered(name)
    stray = [f"--{k.replace('_', '-')}" for k in SETTING_FLAGS if getattr(args, k) is not None and k not in reg.settings]
    if stray:
        raise KeyfaceError(f"{', '.join(stray)} is not a setting of `keyface train {name}`")
    if args.folders and not reg.folders:
        raise KeyfaceError("--folders is for " + ", ".join(f"`keyface train {n}`" for n in TRAINABLE
                                                             if REGISTRY[n].folders))
    source = find_model_file(registered("dlib-resnet"), args.models) if "source_model" in reg.settings else None
    return TrainSettings(keypoint_model=resolve_model(args.keypoint_model, args.models), models=args.models,
                         source_model=source, **{k: getattr(args, k) for k in SETTING_FLAGS})


def folder_items(root: Path) -> tuple[list, str]:
    """(person, photo) from a folder-per-person tree; two people or more, two photos each or more."""
    from keyface.data.folders import read_person_folders
    from keyface.inception_finetune.train import check_people
    items = [(person, photo) for person, photos in read_person_folders(root).items() for photo in photos]
    check_people(np.array([p for p, _ in items], dtype=object))
    return items, f"folder tree {root} ({len({p for p, _ in items})} people, {len(items)} photos)"


def cmd_train(args) -> int:
    """Build the aligned training faces, train, calibrate the thresholds, install into MODELS/embedders."""
    from keyface.keypoints.predictor import InputSpec, KeypointPredictor
    from keyface.recognition.core.pipeline import FacePipeline
    from keyface.recognition.training.face_sets import cached_face_set
    if args.source not in (None, "none") and args.approach != "facenet":
        raise KeyfaceError("--source is for `keyface train facenet`")
    name = "facenet-dlib" if args.source == "dlib-resnet" else args.approach
    settings = train_settings(args, name)
    pipeline = FacePipeline(KeypointPredictor.load(settings.keypoint_model))
    kp_version = pipeline.predictor.version
    if args.folders:
        items, note = folder_items(Path(args.folders))
    else:
        items, note = training_items(data_root(args.data), args.min_photos, not args.no_youtube, args.limit_people)
    run_dir = models_dir(args.models) / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    made, faces = registered(name).trainer(
        settings, lambda spec: cached_face_set(items, pipeline, spec, user_dir("cache"), kp_version), run_dir, note)
    rewrite_metadata(made, META_ENTRY, read_metadata(made) | {"train_seconds": time.perf_counter() - started})
    strangers = None if args.folders else cached_face_set(stranger_items(data_root(args.data)), pipeline,
                                                          InputSpec(**read_metadata(made)["input"]),
                                                          user_dir("cache"), kp_version)
    threshold = calibrate(made, faces, name, strangers)
    target = install_copy(made, models_dir(args.models) / "embedders" / f"{name}.keras")
    log.info("%s embedder: %s (threshold %.4f from held-out DevTrain pairs)", name, target, threshold)
    return 0


def cmd_calibrate(args) -> int:
    """Recompute the thresholds of an embedder's model file on the people its training held out."""
    from keyface.keypoints.predictor import KeypointPredictor, resolve_model
    from keyface.recognition.training.face_sets import cached_face_set
    from keyface.recognition.core.pipeline import FacePipeline
    reg = registered(args.embedder)
    path = find_model_file(reg, args.models, args.embedder_model)
    # the package's own file is rewritten only when named (as its maker does), never found by default
    if not args.embedder_model and any(path.resolve() == shipped.resolve() for shipped in reg.shipped):
        own = f"calibrate one you trained (`keyface train {args.embedder}`)" if reg.trainer else "it is used as shipped"
        raise KeyfaceError(f"{path} is the {args.embedder} model shipped with keyface, calibrated already; keyface "
                           f"does not change it: {own}")
    held_out_people(path)  # before the minutes of face finding, not after
    before = file_version(path)
    embedder = load_embedder(args.embedder, args.models, args.embedder_model)
    kp_path = resolve_model(args.keypoint_model, args.models)
    items, _ = training_items(data_root(args.data), 2, True, None)  # the items `keyface train` uses by default
    pipeline = FacePipeline(KeypointPredictor.load(kp_path))
    kp_version = pipeline.predictor.version
    faces = cached_face_set(items, pipeline, embedder.spec, user_dir("cache"), kp_version)
    strangers = cached_face_set(stranger_items(data_root(args.data)), pipeline, embedder.spec, user_dir("cache"),
                                kp_version)
    threshold = calibrate(path, faces, args.embedder, strangers)
    log.info("%s: threshold %.4f, identify cut %.4f (1%% of strangers named), cluster threshold %.4f "
             "(held-out DevTrain people)", path, threshold, read_threshold(path, "identify_threshold"),
             read_threshold(path, "cluster_threshold"))
    log.warning("%s is model %s now (it was %s): a gallery enrolled with it is refused until reindexed "
                "(`keyface reindex --gallery GALLERY`)", path.name, file_version(path), before)
    return 0


