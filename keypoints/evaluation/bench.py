"""`keyface bench keypoints`: accuracy and speed of keypoint models (and dlib's) on the same faces."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.images import load_image
from keyface.data.youtube_faces import read_frames
from keyface.keypoints.predictor import IBUG68, KeypointPredictor, pick_labelled_face
from keyface.detection.cache import detect_cached
from keyface.keypoints.evaluation.nme import keypoint_metrics, plot_ced
from keyface.keypoints.losses import nme

log = logging.getLogger(__name__)

BOX_RULE = ("face box = the detection nearest the labelled keypoints' centre (BlazeFace boxes mapped onto "
            "MTCNN's; MTCNN's at score >= 0.90); every model gets that same box; frames with no detection are "
            "counted as misses and scored for none")


def labelled_faces(root: Path, split: str, detector) -> tuple[list, list, np.ndarray, list, int]:
    """Frames with a detected labelled face: paths, detector boxes, true keypoints, people, misses."""
    frames = read_frames(root, split)
    found = detect_cached([f.path for f in frames], detector)
    paths, boxes, truth, people = [], [], [], []
    for f in frames:
        i = pick_labelled_face([face.box for face in found[f.path]], f.keypoints)
        if i is not None:
            paths.append(f.path)
            boxes.append(found[f.path][i].box)
            truth.append(f.keypoints)
            people.append(f.person)
    return paths, boxes, np.array(truth, np.float32), people, len(frames) - len(paths)


def predict_all(predictor: KeypointPredictor, paths: list, boxes: list) -> np.ndarray:
    """Predictions (N, 68, 2) in photo pixels, one face at a time."""
    return np.concatenate([predictor.predict(load_image(p), [b]) for p, b in zip(paths, boxes)])


def evaluate_model(predictor: KeypointPredictor, root: Path, split: str, detector, out: Path) -> dict:
    """Accuracy of one model on labelled frames; writes metrics.json and ced.png into out."""
    paths, boxes, truth, _, misses = labelled_faces(root, split, detector)
    pred = predict_all(predictor, paths, boxes)
    report = {"split": split, "detector": detector.name, "box_rule": BOX_RULE, "detection_misses": misses,
              **keypoint_metrics(truth, pred, predictor.scheme)}
    out.mkdir(parents=True, exist_ok=True)
    plot_ced({"model": nme(truth, pred, predictor.scheme.outer_eye_corners)}, out / "ced.png")
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def time_model(predictor: KeypointPredictor, repeats: int = 200) -> tuple[float, float]:
    """Milliseconds per face at batch 1 and at batch 64 (forward pass only, detection excluded)."""
    x1 = np.random.default_rng(0).uniform(0, 255, (1, predictor.input_size, predictor.input_size,
                                                    predictor.channels)).astype(np.float32)
    x64 = np.repeat(x1, 64, axis=0)
    predictor.predict_crops(x64)
    for _ in range(300):  # warm-up (~1 s) after the batch-64 trace: compiled, cached and the core up to speed
        predictor.predict_crops(x1)
    start = time.perf_counter()
    for _ in range(repeats):
        predictor.predict_crops(x1)
    batch1 = (time.perf_counter() - start) / repeats * 1000
    start = time.perf_counter()
    for _ in range(5):
        predictor.predict_crops(x64)
    return batch1, (time.perf_counter() - start) / (5 * 64) * 1000


def parameter_count(path: Path) -> int:
    """Weights in a keypoint model file (its Keras model loaded: the runtime does not say)."""
    from keyface.runtime.networks import load_model
    return int(load_model(path)[0].count_params())


def model_row(path: Path, faces: tuple, unseen: np.ndarray, precision: str) -> tuple[dict, np.ndarray]:
    """One table row (accuracy, speed, size) for a keyface keypoint model run by LiteRT in a precision,
    and per-face NME."""
    predictor = KeypointPredictor.load(path, precision=precision)
    paths, boxes, truth = faces[:3]
    pred = predict_all(predictor, paths, boxes)
    per_face = nme(truth, pred, IBUG68.outer_eye_corners)
    b1, bb = time_model(predictor)
    meta = predictor.metadata
    return {"model": f"{meta['config']['model']['arch']} ({path.name}, {precision})", **keypoint_metrics(truth, pred, IBUG68),
            "nme_unseen_people": float(per_face[unseen].mean()) if unseen.any() else None,
            "ms_batch1": b1, "ms_batched": bb, "params": parameter_count(path),
            "file_mb": path.stat().st_size / 1e6, "boxes": "MTCNN (rule above)",
            "train_seconds": meta.get("summary", {}).get("train_seconds"), "trained_on": meta.get("data")}, per_face
