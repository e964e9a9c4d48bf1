"""`keyface classify`: name faces with approach B's fine-tuned classifier, over the people it was trained on.

No gallery: the replaced final layer of Inception-v3 already has one output per training person
(`keyface train inception --folders people/` makes it for your own people).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError


def register(sub) -> None:
    """Add `keyface classify`."""
    p = sub.add_parser("classify", help="name faces with the fine-tuned Inception-v3 classifier (the people it "
                       "was trained on; no gallery)")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photos to classify")
    p.add_argument("--classifier", help="classifier file (default: MODELS/inception/classifier.keras, made by "
                   "`keyface train inception`)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
    p.add_argument("--top", type=int, default=3, help="most probable people to list per face")
    p.add_argument("--min-probability", type=float, default=0.5, help="unknown below this")
    p.add_argument("--json", action="store_true", help="print JSON instead of a line per face")
    p.set_defaults(func=cmd_classify)


def classifier_path(flag: str | None, models: str | None) -> Path:
    """The classifier file: the flag, else the one `keyface train inception` installed."""
    from keyface.inception_finetune.train import classifier_path as installed
    return Path(flag) if flag else installed(models)


def load_classifier(path: Path):
    """(model, people, input spec) of an Inception classifier file; a clear error for anything else."""
    from keyface.runtime.networks import load_model
    from keyface.keypoints.predictor import InputSpec
    if not path.is_file():
        raise KeyfaceError(f"no classifier at {path}: make one with `keyface train inception` (or pass --classifier)")
    model, meta = load_model(path, expect_kind="inception-classifier")
    if "input" not in meta or "people" not in meta:
        raise KeyfaceError(f"{path} is a training checkpoint without its input size: retrain to classify with it")
    spec = InputSpec(**meta["input"])
    return model, np.asarray(meta["people"]), spec


def classify_faces(model, people: np.ndarray, crops: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
    """For each crop, its `top` most probable people with their probabilities."""
    probs = np.asarray(model.predict(crops.astype(np.float32), verbose=0))
    order = np.argsort(-probs, axis=1)[:, :top]
    return [[(str(people[j]), float(p[j])) for j in row] for p, row in zip(probs, order)]


def cmd_classify(args) -> int:
    """Name every face in every photo with the classifier."""
    from keyface.data.images import load_image
    from keyface.keypoints.predictor import KeypointPredictor, align_batch
    from keyface.recognition.cli.commands import report_errors
    from keyface.recognition.core.pipeline import FacePipeline
    if args.top < 1 or not 0 <= args.min_probability <= 1:
        raise KeyfaceError("--top must be 1 or more and --min-probability between 0 and 1")
    model, people, spec = load_classifier(classifier_path(args.classifier, args.models))
    pipeline = FacePipeline(KeypointPredictor.load(args.keypoint_model, models=args.models))
    out, errors = [], []
    for photo in args.photos:
        try:
            rgb = load_image(photo)
            faces = pipeline.find_faces(rgb)
        except KeyfaceError as exc:
            errors.append(str(exc))
            continue
        if not faces:
            errors.append(f"{photo}: no face found")
            continue
        ranked = classify_faces(model, people, align_batch(rgb, faces, spec).crops, args.top)
        out.append({"photo": photo, "faces": [{**f.to_json(number), "name": r[0][0] if r[0][1] >= args.min_probability
                                                else "unknown", "top": [{"person": n, "probability": round(p, 4)}
                                                                        for n, p in r]}
                                               for number, (f, r) in enumerate(zip(faces, ranked), 1)]})
    _print(out, args.json)
    return report_errors(errors)


def _print(out: list[dict], as_json: bool) -> None:
    """A line per face, or JSON."""
    if as_json:
        print(json.dumps(out, indent=2))
        return
    for item in out:
        for i, f in enumerate(item["faces"]):
            ranked = ", ".join(f"{t['person']} {t['probability']:.3f}" for t in f["top"])
            print(f"{item['photo']} face {i + 1}: {f['name']}  ({ranked})")
