"""What every detector gives: a `Detection` (a box in photo pixels, a score, landmarks if any), the
smallest face looked for by default, overlaps and the merging of overlapping boxes, and the order faces
are numbered in everywhere (left to right)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keyface.data.errors import KeyfaceError

# The smallest face (box width, px) looked for by default: ~10 px between the eyes. `min_face` raises
# it for speed (the finest scale costs ~70% of the time).
MIN_FACE = 24.0


@dataclass(frozen=True)
class Detection:
    """A detected face: box (x0, y0, x1, y1) in image pixels, confidence, 5 MTCNN landmarks."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def size(self) -> float:
        """The larger side of the box in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """Overlap (intersection over union) of every (x0, y0, x1, y1) box in a (N, 4) with every box in b (M, 4):
    (N, M)."""
    inter, area_a, area_b = _intersections(boxes_a, boxes_b)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def inside_share(boxes, faces) -> np.ndarray:
    """For each box in boxes (N, 4), the largest share of its area that lies inside one of faces (M, 4): (N,)."""
    if not len(faces):
        return np.zeros(len(boxes))
    inter, area, _ = _intersections(boxes, faces)
    return (inter / np.maximum(area, 1e-9)).max(1)


def _intersections(boxes_a, boxes_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The area every box in a (N, 4) shares with every box in b (M, 4), (N, M); and the boxes' own areas,
    (N, 1) and (1, M)."""
    a, b = np.asarray(boxes_a, float).reshape(-1, 4)[:, None], np.asarray(boxes_b, float).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return w * h, (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it absorbs."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    alive, kept = np.ones(len(boxes), bool), []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (box_iou(boxes[i], boxes)[0] > iou)
        group[i] = True
        weights = scores[group]
        kept.append(((boxes[group] * weights[:, None]).sum(0) / weights.sum(), float(scores[i])))
        alive &= ~group
    return kept


def checked_min_face(min_face: float) -> float:
    """The smallest face to look for, in px; under 8 px no detector here sees a face (nor does a NaN)."""
    if not min_face >= 8:
        raise KeyfaceError(f"min_face must be at least 8 px, not {min_face:g}")
    return float(min_face)


def left_to_right(faces: list) -> list:
    """Faces (anything with a .box) in the order keyface numbers them everywhere: by the box's left edge."""
    return sorted(faces, key=lambda f: float(f.box[0]))


def face_to_json(face: Detection) -> dict:
    """A JSON-ready dict of a face."""
    return {"box": list(face.box), "score": face.score, "landmarks": [list(p) for p in face.landmarks]}


def face_from_json(d: dict) -> Detection:
    """Inverse of face_to_json."""
    return Detection(tuple(d["box"]), d["score"], tuple(tuple(p) for p in d["landmarks"]))
