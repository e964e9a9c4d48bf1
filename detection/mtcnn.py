"""MTCNN (the `mtcnn` wheel, TensorFlow, ~10x slower than BlazeFace end to end): faces from `min_face` px
wide and 5 landmarks each; its network is built on the first call, never at import."""
from __future__ import annotations

import os

import numpy as np

from keyface.detection.detector import MIN_FACE, Detection, checked_min_face, left_to_right

# MTCNN runs on photos shrunk to this long side, unless that would make a min_face face smaller than
# MTCNN_MIN_FACE, the smallest face its pyramid looks for.
DETECT_MAX_SIDE = 1024
MTCNN_MIN_FACE = 20
# MTCNN's pyramid breaks on images under ~24 px; we pad small images up to this size.
DETECT_MIN_SIDE = 48
MIN_SCORE = 0.90


class MTCNNDetector:
    """MTCNN face detector; the network is built on the first call, never at import."""

    name = "mtcnn"

    def __init__(self, min_score: float = MIN_SCORE, min_face: float = MIN_FACE):
        self.min_score, self.min_face = min_score, checked_min_face(min_face)
        self._mtcnn = None

    @property
    def cache_name(self) -> str:
        """What its detections are cached under: its name, and its score cut and smallest face where not
        the defaults."""
        name = self.name if self.min_score == MIN_SCORE else f"{self.name}-{self.min_score:g}"
        return name if self.min_face == MIN_FACE else f"{name}-min{self.min_face:g}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in an RGB uint8 image, left to right (the order every output numbers faces in)."""
        if self._mtcnn is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN  # heavy: builds three Keras models
            self._mtcnn = MTCNN(device="CPU:0")
        small, scale, pad = _prepare(rgb, self.min_face)
        try:
            raw = self._mtcnn.detect_faces(small, min_face_size=MTCNN_MIN_FACE)
        except ValueError:  # MTCNN's pyramid can produce empty tensors on odd shapes: no face
            raw = []
        faces = [_to_face(r, scale, pad) for r in raw if r["confidence"] >= self.min_score]
        return left_to_right(faces)


def _prepare(rgb: np.ndarray, min_face: float) -> tuple[np.ndarray, float, int]:
    """Downscale large images as far as a min_face face stays findable, pad tiny ones; return image,
    scale and padding applied."""
    import cv2
    h, w = rgb.shape[:2]
    scale = min(1.0, max(DETECT_MAX_SIDE / max(h, w), MTCNN_MIN_FACE / min_face))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    pad = max(0, (DETECT_MIN_SIDE - min(rgb.shape[:2]) + 1) // 2)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(rgb), scale, pad


def _to_face(r: dict, scale: float, pad: int) -> Detection:
    """Map one MTCNN result back to original image coordinates."""
    x, y, w, h = r["box"]
    box = tuple(float(v) for v in ((x - pad) / scale, (y - pad) / scale,
                                   (x + w - pad) / scale, (y + h - pad) / scale))
    order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    marks = tuple(((r["keypoints"][k][0] - pad) / scale, (r["keypoints"][k][1] - pad) / scale) for k in order)
    return Detection(box, float(r["confidence"]), tuple((float(a), float(b)) for a, b in marks))
