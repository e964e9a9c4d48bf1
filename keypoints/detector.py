"""Face detection: BlazeFace (the default, ~5 ms a photo) or MTCNN (TensorFlow, ~115-160 ms), built on first use.

Both give boxes the keypoint net's crop rule was fitted to (MTCNN's; BlazeFace's are mapped onto
them); MTCNN also gives 5 landmarks. `DETECTORS` names them; `make_detector(name)` builds one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

# Detection runs on at most this many pixels on the long side: a 12-megapixel photo would cost
# seconds in MTCNN's pyramid for no gain, since faces under ~20 px are unusable anyway.
DETECT_MAX_SIDE = 1024
# MTCNN's pyramid breaks on images under ~24 px; we pad small images up to this size.
DETECT_MIN_SIDE = 48
MIN_SCORE = 0.90


@dataclass(frozen=True)
class Face:
    """A detected face: box (x0, y0, x1, y1) in image pixels, confidence, 5 MTCNN landmarks."""
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def size(self) -> float:
        """The larger side of the box in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


class MTCNNDetector:
    """MTCNN face detector; the network is built on the first call, never at import."""

    name = "mtcnn"

    @property
    def cache_name(self) -> str:
        """What its detections are cached under: its name, and its score cut where not the default."""
        return self.name if self.min_score == MIN_SCORE else f"{self.name}-{self.min_score:g}"

    def __init__(self, min_score: float = MIN_SCORE):
        self.min_score = min_score
        self._mtcnn = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Return every face in an RGB uint8 image, largest first."""
        if self._mtcnn is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN  # heavy: builds three Keras models
            self._mtcnn = MTCNN(device="CPU:0")
        small, scale, pad = _prepare(rgb)
        try:
            raw = self._mtcnn.detect_faces(small)
        except ValueError:  # MTCNN's pyramid can produce empty tensors on odd shapes: no face
            raw = []
        faces = [_to_face(r, scale, pad) for r in raw if r["confidence"] >= self.min_score]
        return sorted(faces, key=lambda f: -f.size)


def _prepare(rgb: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Downscale large images and pad tiny ones; return image, scale and padding applied."""
    import cv2
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    pad = max(0, (DETECT_MIN_SIDE - min(rgb.shape[:2]) + 1) // 2)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(rgb), scale, pad


def _to_face(r: dict, scale: float, pad: int) -> Face:
    """Map one MTCNN result back to original image coordinates."""
    x, y, w, h = r["box"]
    box = tuple(float(v) for v in ((x - pad) / scale, (y - pad) / scale,
                                   (x + w - pad) / scale, (y + h - pad) / scale))
    order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    marks = tuple(((r["keypoints"][k][0] - pad) / scale, (r["keypoints"][k][1] - pad) / scale) for k in order)
    return Face(box, float(r["confidence"]), tuple((float(a), float(b)) for a, b in marks))


class BlazeFaceDetector:
    """BlazeFace short-range (keypoints.blazeface), run by LiteRT; loaded on first use."""

    name = "blazeface"

    def __init__(self, min_score: float | None = None):
        from keyface.keypoints import blazeface
        self.min_score = blazeface.MIN_SCORE if min_score is None else min_score
        self._anchors = blazeface.anchors()
        self._network = None
        self._loading = threading.Lock()

    @property
    def cache_name(self) -> str:
        """Its name and a digest of what its boxes depend on (model file, runtime, score cut, NMS, box mapping)."""
        from keyface.keypoints import blazeface
        settings = repr((blazeface.SHA256, "litert", self.min_score, blazeface.NMS_IOU,
                         sorted(blazeface.TO_MTCNN.items())))
        return f"{self.name}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"

    def _net(self):
        """The network, read from the checked model file on first use (shared by every thread)."""
        with self._loading:
            if self._network is None:
                from keyface.keypoints import blazeface
                from keyface.keypoints.runtime import LiteNetwork, cpu_threads
                self._network = LiteNetwork(blazeface.checked_model_file().read_bytes(), cpu_threads())
        return self._network

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Return every face in an RGB uint8 image, largest first, as MTCNN-like boxes."""
        from keyface.keypoints import blazeface
        blob, scale, px, py = blazeface.letterbox(rgb)
        out = self._net().outputs(blob)
        regress, logits = out["regressors"].reshape(-1, 16), np.clip(out["classificators"].reshape(-1), -100, 100)
        keep = logits > np.log(self.min_score / (1 - self.min_score))
        if not keep.any():
            return []
        r, a = regress[keep, :4] / blazeface.INPUT, self._anchors[keep]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        boxes = boxes * (blazeface.INPUT * scale) - np.array([px, py, px, py], np.float32)
        scores = 1 / (1 + np.exp(-logits[keep]))
        faces = [Face(blazeface.to_mtcnn_box(box), score) for box, score in
                 blazeface.weighted_nms(boxes, scores, blazeface.NMS_IOU)]
        return sorted(faces, key=lambda f: -f.size)


DETECTORS = {"blazeface": BlazeFaceDetector, "mtcnn": MTCNNDetector}
DEFAULT_DETECTOR = "blazeface"  # chosen by measurement: docs/benchmarks.md, `keyface bench speed`


def make_detector(name: str = DEFAULT_DETECTOR):
    """A face detector by name (nothing is loaded until its first detect())."""
    from keyface.data.errors import KeyfaceError
    if name not in DETECTORS:
        raise KeyfaceError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name]()


def face_to_json(face: Face) -> dict:
    """A JSON-ready dict of a face."""
    return {"box": list(face.box), "score": face.score, "landmarks": [list(p) for p in face.landmarks]}


def face_from_json(d: dict) -> Face:
    """Inverse of face_to_json."""
    return Face(tuple(d["box"]), d["score"], tuple(tuple(p) for p in d["landmarks"]))


def detection_cache_file(detector: str) -> Path:
    """The per-user cache of one detector's detections, keyed by file content."""
    from keyface.data.paths import user_dir
    return user_dir("cache") / f"detections-{detector}.json"


def cache_key(detector) -> str:
    """What a detector's boxes are cached under: its cache_name, or for a detector without one its name."""
    return getattr(detector, "cache_name", detector.name)


def detect_cached(paths: Iterable[Path], detector, progress: bool = True) -> dict[Path, list[Face]]:
    """Detect faces in many files, caching results by file content hash in the detector's JSON file."""
    from keyface.data.images import load_image
    from tqdm import tqdm
    paths = list(paths)
    cache_file = detection_cache_file(cache_key(detector))
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    out, dirty = {}, 0
    for path in tqdm(paths, desc="detecting faces", disable=not progress, unit="img"):
        key = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if key not in cache:
            cache[key] = [face_to_json(f) for f in detector.detect(load_image(path))]
            dirty += 1
            if dirty % 500 == 0:
                _write_json(cache_file, cache)
        out[path] = [face_from_json(d) for d in cache[key]]
    if dirty:
        _write_json(cache_file, cache)
    return out


def _write_json(path: Path, obj: dict) -> None:
    """Write JSON atomically (write a temp file, then rename) so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)
