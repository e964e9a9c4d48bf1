"""`keyface train keypoints|geometry`: identity models trained on LFW DevTrain people only."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from data.errors import KeyfaceError
from data.paths import data_root, models_dir, user_dir
from keypoints.modelfile import META_ENTRY, read_metadata
from recognition.registry import EMBEDDER_NAMES

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface train APPROACH`."""
    p = sub.add_parser("train", help="train an embedder on LFW DevTrain people: keypoints (A) | geometry | "
                       "inception (B) | facenet (C)")
    p.add_argument("approach", choices=["keypoints", "geometry", "inception", "facenet"])
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--folders", metavar="DIR", help="inception, facenet: train on a folder-per-person tree instead of LFW")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model to start from and align with (default: shipped)")
    p.add_argument("--min-photos", type=int, default=2, help="DevTrain people with at least this many photos")
    p.add_argument("--no-youtube", action="store_true", help="leave out youtube_faces_68 frames of DevTrain people")
    p.add_argument("--head-epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=12)
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


def training_items(root: Path, min_photos: int, youtube: bool, limit: int | None) -> tuple[list, str]:
    """(person, photo) of LFW DevTrain people (+ their youtube_faces_68 frames), and a note saying so."""
    from data.lfw import LFW
    from data.youtube_faces import read_frames
    from recognition.identity_data import lfw_items
    lfw = LFW(root)
    people = lfw.people("DevTrain")[:limit] if limit else lfw.people("DevTrain")
    items = lfw_items(lfw, people, min_photos)
    note = f"LFW DevTrain people with >= {min_photos} photos ({len(items)} photos)"
    if youtube:
        keep = {p for p, _ in items}
        devtest = set(lfw.people("DevTest"))
        frames = [(f.person, f.path) for f in read_frames(root, "train") if f.person in keep and f.person not in devtest]
        items += frames
        note += f" + {len(frames)} youtube_faces_68 training frames of those people"
    return items, note + "; no LFW DevTest person"


def folder_items(root: Path, approach: str) -> tuple[list, str]:
    """(person, photo) from a folder-per-person tree; two people or more, two photos each or more."""
    from data.folders import read_person_folders
    from inception_finetune.train import check_people
    if approach not in ("inception", "facenet"):
        raise KeyfaceError("--folders is for `keyface train inception` and `keyface train facenet`")
    items = [(person, photo) for person, photos in read_person_folders(root).items() for photo in photos]
    check_people(np.array([p for p, _ in items], dtype=object))
    return items, f"folder tree {root} ({len({p for p, _ in items})} people, {len(items)} photos)"


def cmd_train(args) -> int:
    """Build the aligned training faces, train, calibrate a threshold, install into MODELS/embedders."""
    from keypoints.predictor import KeypointPredictor, resolve_model
    from recognition.identity_data import cached_face_set
    from recognition.pipeline import FacePipeline
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
    from recognition.embedders import InputSpec, file_version
    started = time.perf_counter()
    if args.approach == "keypoints":
        from recognition.approach_a import SPEC, IdentityConfig, train_approach_a
        faces = cached_face_set(items, pipeline, SPEC, user_dir("cache"), file_version(kp_path))
        cfg = IdentityConfig(head_epochs=args.head_epochs, finetune_epochs=args.finetune_epochs)
        made = train_approach_a(faces, kp_path, cfg, run_dir, note)
    elif args.approach == "inception":
        from inception_finetune.train import CLASSIFIER_FILE, InceptionConfig, train_inception
        from recognition.classify import classifier_path
        cfg = InceptionConfig(input_size=args.input_size or 160, weights=args.weights,
                              finetune_epochs=args.finetune_epochs)
        faces = cached_face_set(items, pipeline, cfg.spec, user_dir("cache"), file_version(kp_path))
        made = train_inception(faces, cfg, run_dir, note, args.models)
        _install(run_dir / CLASSIFIER_FILE, classifier_path(None, args.models))
    elif args.approach == "facenet":
        from facenet.model import FacenetConfig
        from facenet.train import FINETUNE_DEFAULTS, TrainConfig, train_facenet
        tuned = {} if args.source == "none" else dict(FINETUNE_DEFAULTS)
        tuned.update({k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None})
        cfg = TrainConfig(model=FacenetConfig(input_size=args.input_size or 96), mining=args.mining,
                          source=args.source, models=args.models, **tuned)
        faces = cached_face_set(items, pipeline, cfg.spec, user_dir("cache"), file_version(kp_path))
        made = train_facenet(faces, cfg, run_dir, note)
    else:
        from recognition.approach_a import split_people
        from recognition.geometry import SPEC, fit_geometry
        faces = cached_face_set(items, pipeline, SPEC, user_dir("cache"), file_version(kp_path))
        train, _ = split_people(faces, 0.1, 0)  # the held-out people calibrate the threshold below
        made = fit_geometry(train, 64, run_dir / "embedder.keras", note)
    _rewrite_meta(made, META_ENTRY, read_metadata(made) | {"train_seconds": time.perf_counter() - started})
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
    from keypoints.predictor import KeypointPredictor, resolve_model
    from recognition.embedders import REGISTRY, file_version, find_model_file, load_embedder
    from recognition.identity_data import cached_face_set
    from recognition.pipeline import FacePipeline
    embedder = load_embedder(args.embedder, args.models, args.embedder_model)
    path = find_model_file(REGISTRY[args.embedder], args.models, args.embedder_model)
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


def read_threshold(path: Path, key: str) -> float:
    """A threshold stored in a model file's metadata."""
    return float(read_metadata(path)[key])


def calibrate(model_path: Path, faces, approach: str, strangers=None) -> float:
    """Store the model's thresholds, chosen on held-out DevTrain people: 'same person' (best pair
    accuracy), clustering, and identify's open-set cut (1% of strangers named). Strangers are DevTrain
    people with a single photo (no trainer uses them) where given, else half the held-out people."""
    from recognition.approach_a import split_people
    from recognition.cluster import best_cluster_threshold
    from recognition.embedders import FaceBatch, load_embedder
    from recognition.open_set import open_set_metadata
    from recognition.verification import best_threshold, pair_distances, sample_pairs
    stored = read_metadata(model_path)
    held = stored.get("held_out_people")
    if held:  # the trainer recorded whom it held out: calibrate on exactly those people
        val = faces.subset(np.isin(faces.people.astype(str), held))
    else:  # older files: the rule every trainer uses (10% of people, seed 0), recorded below
        _, val = split_people(faces, 0.1, 0)
    if len(np.unique(val.people)) < 2:
        raise KeyfaceError("too few people to calibrate a threshold")
    emb = load_embedder(approach, model=str(model_path))
    vectors = emb.embed(FaceBatch(val.crops, val.keypoints))
    pairs = sample_pairs(val.people, 1000, 1)
    threshold = best_threshold(pair_distances(vectors[pairs[:, 0]], vectors[pairs[:, 1]]), pairs[:, 2].astype(bool))
    if strangers is not None and len(strangers):
        open_set = open_set_metadata(vectors, val.people, emb.embed(FaceBatch(strangers.crops, strangers.keypoints)),
                                     "held-out DevTrain people; strangers: DevTrain people with one photo")
    else:
        names = np.unique(val.people)
        enrolled = np.isin(val.people, names[::2])
        open_set = open_set_metadata(vectors[enrolled], val.people[enrolled], vectors[~enrolled],
                                     "half the held-out people enrolled, the other half strangers")
    meta = stored | {"threshold": threshold, "threshold_from": "held-out DevTrain people",
                                        "cluster_threshold": best_cluster_threshold(vectors, val.people),
                                        "held_out_people": sorted(map(str, np.unique(val.people))), **open_set}
    _rewrite_meta(model_path, META_ENTRY, meta)
    return threshold


def stranger_items(root: Path) -> list:
    """(person, photo) of DevTrain people with a single photo: never trained on (trainers need two)."""
    from data.lfw import LFW
    from recognition.identity_data import lfw_items
    lfw = LFW(root)
    return lfw_items(lfw, [p for p, n in lfw.image_count("DevTrain").items() if n == 1])


def _rewrite_meta(path: Path, entry: str, meta: dict) -> None:
    """Replace the metadata entry of a .keras zip (copy every other entry, then rename)."""
    import zipfile
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != entry:
                dst.writestr(info, src.read(info.filename))
        dst.writestr(entry, json.dumps(meta, indent=2, default=str))
    tmp.replace(path)
