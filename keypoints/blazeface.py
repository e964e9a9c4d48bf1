"""BlazeFace short-range: MediaPipe's face detector, a 230 KB TFLite file run by LiteRT.

The file ships in the package; it is MediaPipe's `face_detection_short_range.tflite` from the PyPI
wheel `mediapipe==0.10.14` (Apache-2.0), checked by its SHA-256 before use and read as data by
LiteRT (built-in operators only; no TensorFlow, nothing executed). Made for 128 px inputs in which a
face fills a good part of the frame, it is fully convolutional: run on a larger input it sees faces of
~18-80 px of that input anywhere in it, which is how keyface finds small faces in big photos
(keypoints.pyramid, keypoints.detector).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "blazeface-short-range.tflite"
SOURCE = ("mediapipe/modules/face_detection/face_detection_short_range.tflite from PyPI mediapipe==0.10.14 "
          "(Apache-2.0)")
SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
# The same network in int8 (keypoints.blazeface_int8, `keyface weights blazeface-int8`), for the pyramid's
# tiles, where nearly all of a big photo's time goes: ~1.6x faster. The whole-photo pass keeps the float file.
INT8_FILE = MODEL_FILE.with_name("blazeface-short-range-int8.tflite")
INT8_SOURCE = f"{MODEL_FILE.name} quantised to int8 by `keyface weights blazeface-int8`"
INT8_SHA256 = "6e2cc95cc715fde52ad3867f93c337c77e1ac412785d84b05715632288acb56a"
INPUT = 128
# Score cuts, chosen with `keyface bench detect` on canvases of another seed than the reported ones, with
# every LFW and youtube_faces_68 face still found (docs/benchmarks.md). The whole-photo pass keeps
# MediaPipe's default on photos up to LARGE_PHOTO px, where it finds most faces; on larger photos it only
# has to find faces over a quarter of the photo, which score high, while backgrounds seen at 128 px
# score up to ~0.7. The finest scale's cut, then the coarser scales': many anchors over smooth backgrounds
# raise false alarms there otherwise.
MIN_SCORE = 0.5
LARGE_PHOTO_SCORE = 0.75
LARGE_PHOTO = 512
FINE_SCORE = 0.65
TILE_SCORE = 0.8
NMS_IOU = 0.3
# BlazeFace's box runs from the brows to the chin; the keypoint crop rule was fitted to MTCNN's
# taller box. Fitted as medians over 2,995 LFW + youtube_faces_68 training faces found by both
# (s = sqrt(w * h) of the BlazeFace box): centre shift and MTCNN-like width and height.
TO_MTCNN = {"dx": -0.0158, "dy": -0.1144, "w": 0.8622, "h": 1.1691}


def anchors() -> np.ndarray:
    """The 896 anchor centres (x, y) in [0, 1] of the 128 px input: 16x16 with 2 per cell, then 8x8 with 6."""
    return grid_anchors(INPUT, INPUT) / INPUT


@functools.lru_cache(maxsize=16)
def grid_anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres (x, y) in input pixels for an input of any height x width (multiples of 16): the net
    is fully convolutional, so it has a stride-8 grid with 2 anchors a cell, then a stride-16 grid with 6.
    Kept per size (tiles repeat their sizes); read-only."""
    grids = []
    for stride, per_cell in ((8, 2), (16, 6)):
        xs, ys = np.meshgrid((np.arange(width // stride, dtype=np.float32) + 0.5) * stride,
                             (np.arange(height // stride, dtype=np.float32) + 0.5) * stride)
        grids.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_cell, axis=0))
    anchors = np.concatenate(grids)
    anchors.flags.writeable = False
    return anchors


def decode(outputs: dict[str, np.ndarray], anchors_px: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x0, y0, x1, y1) in input pixels and scores of the anchors scoring at least min_score.
    The net regresses each box's centre offset and size in input pixels."""
    # told apart by shape, not name: the int8 file's converter names its outputs anew
    regress = next(o for o in outputs.values() if o.shape[-1] == 16).reshape(-1, 16)
    logits = np.clip(next(o for o in outputs.values() if o.shape[-1] == 1).reshape(-1), -100, 100)
    keep = logits > np.log(min_score / (1 - min_score))
    r, a = regress[keep, :4], anchors_px[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
    return boxes, 1 / (1 + np.exp(-logits[keep]))


def to_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) as the net's float input in [-1, 1], with a batch axis."""
    x = rgb[None].astype(np.float32)
    x *= np.float32(2.0 / 255.0)  # in place: a 1024 px tile is 12 MB of floats
    x -= np.float32(1.0)
    return x


def letterbox(rgb: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """The photo padded to a centred square and resized to the net's input, in [-1, 1] (NHWC)."""
    import cv2
    h, w = rgb.shape[:2]
    side = max(h, w)
    px, py = (side - w) // 2, (side - h) // 2
    if side != w or side != h:
        rgb = cv2.copyMakeBorder(rgb, py, side - h - py, px, side - w - px, cv2.BORDER_CONSTANT, value=0)
    small = cv2.resize(rgb, (INPUT, INPUT), interpolation=cv2.INTER_AREA if side > INPUT else cv2.INTER_LINEAR)
    return to_input(small), side / INPUT, px, py


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it absorbs."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    alive, kept = np.ones(len(boxes), bool), []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (box_iou(boxes[i], boxes) > iou)
        group[i] = True
        weights = scores[group]
        kept.append(((boxes[group] * weights[:, None]).sum(0) / weights.sum(), float(scores[i])))
        alive &= ~group
    return kept


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each of (N, 4) boxes."""
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def to_mtcnn_box(box: np.ndarray) -> tuple[float, float, float, float]:
    """A BlazeFace box mapped onto the MTCNN-like box the keypoint crop rule expects."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    s = float(np.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0)))
    cx, cy = cx + TO_MTCNN["dx"] * s, cy + TO_MTCNN["dy"] * s
    w, h = TO_MTCNN["w"] * s, TO_MTCNN["h"] * s
    return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))


def checked_model_file(path: Path = MODEL_FILE, sha256: str = SHA256, source: str = SOURCE) -> Path:
    """The model file, refused unless its SHA-256 is the pinned one."""
    if not path.is_file():
        raise KeyfaceError(f"face detector model missing: {path} (reinstall keyface)")
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise KeyfaceError(f"{path}: SHA-256 mismatch: refusing it (expected {source})")
    return path
