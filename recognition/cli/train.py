"""`keyface train APPROACH` and `keyface calibrate`: identity models trained on LFW DevTrain people only."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.paths import data_root, models_dir, user_dir
from keyface.keypoints.modelfile import META_ENTRY, read_metadata
from keyface.recognition.approaches.calibration import calibrate, read_threshold, rewrite_metadata
from keyface.recognition.approaches.registry import EMBEDDER_NAMES, find_model_file, load_embedder, registered
from keyface.recognition.training.items import stranger_items, training_items

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface train APPROACH`."""
    p = sub.add_parser("train", help="train an embedder on LFW DevTrain people: keypoints (A) | geometry | "
                       "inception (B) | facenet (C)")
    p.add_argument("approach", choices=["keypoints", "geometry", "inception", "facenet"],
                   help="what to train: keypoints (A), geometry, inception (B) or facenet (C)")
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--folders", metavar="DIR", help="inception, facenet: train on a folder-per-person tree instead of LFW")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model to start from and align with (default: shipped)")
    p.add_argument("--min-photos", type=int, default=2, help="DevTrain people with at least this many photos")
    p.add_argument("--no-youtube", action="store_true", help="leave out youtube_faces_68 frames of DevTrain people")
    p.add_argument("--head-epochs", type=int, default=4, help="keypoints, inception: epochs of the new head "
                   "alone, the network frozen (default: 4)")
    p.add_argument("--finetune-epochs", type=int, default=12, help="keypoints, inception: epochs of fine-tuning "
                   "the whole network (default: 12)")
    p.add_argument("--limit-people", type=int, help="first N people only (quick trials)")
    p.add_argument("--weights", default="imagenet",
                   help="inception: imagenet | none | a .keras checkpoint | a Keras InceptionV3 .h5 file")
    p.add_argument("--input-size", type=int, help="crop size (inception: 160, Inception's own is 299; facenet: 96)")
    p.add_argument("--epochs", type=int, help="facenet: epochs (default: 30 from scratch, 4 from a source)")
    p.add_argument("--source", default="none", choices=["none", "dlib-resnet"],
                   help="facenet: start from scratch, or fine-tune dlib's face descriptor (installed as facenet-dlib)")
    p.add_argument("--lr", type=float, help="facenet: learning rate (default: 1e-3 from scratch, 1e-5 from a source)")
    p.add_argument("--mining", default="batch-hard", choices=["semi-hard", "batch-hard", "batch-all"],
                   help="facenet: triplet mining inside each P x K batch")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("calibrate", help="store an embedder's 'unknown' and clustering thresholds, chosen on "
                       "LFW DevTrain people held out of its training")
    p.add_argument("embedder", help=" | ".join(EMBEDDER_NAMES))
    p.add_argument("--embedder-model", help="the model file to calibrate (default: the one the embedder loads)")
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model to align with (default: shipped)")
    p.set_defaults(func=cmd_calibrate)


def folder_items(root: Path, approach: str) -> tuple[list, str]:
    """(person, photo) from a folder-per-person tree; two people or more, two photos each or more."""
    from keyface.data.folders import read_person_folders
    from keyface.inception_finetune.train import check_people
    if approach not in ("inception", "facenet"):
        raise KeyfaceError("--folders is for `keyface train inception` and `keyface train facenet`")
    items = [(person, photo) for person, photos in read_person_folders(root).items() for photo in photos]
    check_people(np.array([p for p, _ in items], dtype=object))
    return items, f"folder tree {root} ({len({p for p, _ in items})} people, {len(items)} photos)"


def cmd_train(args) -> int:
    """Build the aligned training faces, train, calibrate a threshold, install into MODELS/embedders."""
    from keyface.keypoints.predictor import KeypointPredictor, resolve_model
    from keyface.recognition.training.face_sets import cached_face_set
    from keyface.recognition.core.pipeline import FacePipeline
    kp_path = resolve_model(args.keypoint_model, args.models)
    pipeline = FacePipeline(KeypointPredictor.load(kp_path))
    if args.folders:
        items, note = folder_items(Path(args.folders), args.approach)
    else:
        items, note = training_items(data_root(args.data), args.min_photos, not args.no_youtube, args.limit_people)
    if args.source != "none" and args.approach != "facenet":
        raise KeyfaceError("--source is for `keyface train facenet`")
    name = args.approach if args.source == "none" else "facenet-dlib"
    run_dir = models_dir(args.models) / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    target = models_dir(args.models) / "embedders" / f"{name}.keras"
    from keyface.recognition.core.embedders import InputSpec, file_version
    started = time.perf_counter()
    if args.approach == "keypoints":
        from keyface.recognition.approaches.keypoints import SPEC, IdentityConfig, train_approach_a
        faces = cached_face_set(items, pipeline, SPEC, user_dir("cache"), file_version(kp_path))
        cfg = IdentityConfig(head_epochs=args.head_epochs, finetune_epochs=args.finetune_epochs)
        made = train_approach_a(faces, kp_path, cfg, run_dir, note)
    elif args.approach == "inception":
        from keyface.inception_finetune.train import CLASSIFIER_FILE, InceptionConfig, train_inception
        from keyface.recognition.cli.classify import classifier_path
        cfg = InceptionConfig(input_size=args.input_size or 160, weights=args.weights,
                              finetune_epochs=args.finetune_epochs)
        faces = cached_face_set(items, pipeline, cfg.spec, user_dir("cache"), file_version(kp_path))
        made = train_inception(faces, cfg, run_dir, note, args.models)
        _install(run_dir / CLASSIFIER_FILE, classifier_path(None, args.models))
    elif args.approach == "facenet":
        from keyface.facenet.model import FacenetConfig
        from keyface.facenet.train import FINETUNE_DEFAULTS, TrainConfig, train_facenet
        tuned = {} if args.source == "none" else dict(FINETUNE_DEFAULTS)
        tuned.update({k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None})
        cfg = TrainConfig(model=FacenetConfig(input_size=args.input_size or 96), mining=args.mining,
                          source=args.source, **tuned,
                          source_model=None if args.source == "none" else
                          str(find_model_file(registered(args.source), args.models)))
        faces = cached_face_set(items, pipeline, cfg.spec, user_dir("cache"), file_version(kp_path))
        made = train_facenet(faces, cfg, run_dir, note)
    else:
        from keyface.recognition.approaches.geometry import SPEC, fit_geometry
        from keyface.recognition.training.held_out import held_out_names, split_people
        faces = cached_face_set(items, pipeline, SPEC, user_dir("cache"), file_version(kp_path))
        train, val = split_people(faces, 0.1, 0)  # the held-out people calibrate the threshold below
        made = fit_geometry(train, 64, run_dir / "embedder.keras", note, held_out_names(val))
    rewrite_metadata(made, META_ENTRY, read_metadata(made) | {"train_seconds": time.perf_counter() - started})
    strangers = None if args.folders else cached_face_set(stranger_items(data_root(args.data)), pipeline,
                                                          InputSpec(**read_metadata(made)["input"]),
                                                          user_dir("cache"), file_version(kp_path))
    threshold = calibrate(made, faces, name, strangers)
    _install(made, target)
    log.info("%s embedder: %s (threshold %.4f from held-out DevTrain pairs)", name, target, threshold)
    return 0


def _install(made: Path, target: Path) -> None:
    """Copy a trained model file to where every command looks for it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(made.read_bytes())


def cmd_calibrate(args) -> int:
    """Recompute the thresholds of an embedder's model file on the people its training held out."""
    from keyface.keypoints.predictor import KeypointPredictor, resolve_model
    from keyface.recognition.core.embedders import file_version
    from keyface.recognition.training.face_sets import cached_face_set
    from keyface.recognition.core.pipeline import FacePipeline
    embedder = load_embedder(args.embedder, args.models, args.embedder_model)
    path = find_model_file(registered(args.embedder), args.models, args.embedder_model)
    kp_path = resolve_model(args.keypoint_model, args.models)
    items, _ = training_items(data_root(args.data), 2, True, None)  # the items `keyface train` uses by default
    pipeline = FacePipeline(KeypointPredictor.load(kp_path))
    faces = cached_face_set(items, pipeline, embedder.spec, user_dir("cache"), file_version(kp_path))
    strangers = cached_face_set(stranger_items(data_root(args.data)), pipeline, embedder.spec, user_dir("cache"),
                                file_version(kp_path))
    threshold = calibrate(path, faces, args.embedder, strangers)
    log.info("%s: threshold %.4f, identify cut %.4f (1%% of strangers named), cluster threshold %.4f "
             "(held-out DevTrain people)", path, threshold, read_threshold(path, "identify_threshold"),
             read_threshold(path, "cluster_threshold"))
    return 0


