"""Face detection: BlazeFace (the default) or MTCNN (TensorFlow, ~10x slower), built on first use.

Both find faces from `min_face` px wide (24 by default, ~10 px between the eyes) up to the whole photo,
and give boxes the keypoint net's crop rule was fitted to (MTCNN's; BlazeFace's are mapped onto them);
MTCNN also gives 5 landmarks. `DETECTORS` names them; `make_detector(name, min_face)` builds one.
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

from keyface.data.errors import KeyfaceError

log = logging.getLogger(__name__)

# MTCNN runs on photos shrunk to this long side, unless that would make a min_face face smaller than
# MTCNN_MIN_FACE, the smallest face its pyramid looks for.
DETECT_MAX_SIDE = 1024
MTCNN_MIN_FACE = 20
# MTCNN's pyramid breaks on images under ~24 px; we pad small images up to this size.
DETECT_MIN_SIDE = 48
MIN_SCORE = 0.90
# The smallest face (box width, px) looked for by default: ~10 px between the eyes. `min_face` raises
# it for speed (the finest scale costs ~70% of the time).
MIN_FACE = 24.0
# Faces narrower than this share of min_face are dropped: they are the finest scale's false alarms.
MIN_FACE_KEPT = 0.7
MAX_CANDIDATES = 4000
# A box scoring under the coarse scales' cut with a quarter of its middle whose grey levels spread less
# than this (of 255) is no face: faces found on the canvases of `keyface bench detect` spread 5 or more
# in every quarter, false boxes 0-2.1 (they scored 0.62-0.74); a washed-out face can be flatter, but
# scores higher (a youtube_faces_68 skater: 0.91).
FLAT_STD = 2.5
# What the detections are filtered by after NMS, named in the cache key so that a change of rule is
# never answered from a cache made under the old one.
FILTERS = "size >= MIN_FACE_KEPT * min_face; flat quarters refused under the coarse cut"
NETWORK_SIZES_KEPT = 8


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


class MTCNNDetector:
    """MTCNN face detector; the network is built on the first call, never at import."""

    name = "mtcnn"

    def __init__(self, min_score: float = MIN_SCORE, min_face: float = MIN_FACE):
        self.min_score, self.min_face = min_score, _checked_min_face(min_face)
        self._mtcnn = None

    @property
    def cache_name(self) -> str:
        """What its detections are cached under: its name, and its score cut and smallest face where not
        the defaults."""
        name = self.name if self.min_score == MIN_SCORE else f"{self.name}-{self.min_score:g}"
        return name if self.min_face == MIN_FACE else f"{name}-min{self.min_face:g}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Return every face in an RGB uint8 image, largest first."""
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
        return sorted(faces, key=lambda f: -f.size)


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


class BlazeFaceDetector:
    """BlazeFace short-range (keypoints.blazeface), run by LiteRT over the whole photo and, fully
    convolutionally, over the tiles of an image pyramid (keypoints.pyramid): every face from `min_face`
    px wide up to the whole photo. Loaded on first use."""

    name = "blazeface"

    def __init__(self, min_score: float | None = None, min_face: float = MIN_FACE):
        from keyface.keypoints import blazeface
        self.min_face = _checked_min_face(min_face)
        self.min_score = blazeface.MIN_SCORE if min_score is None else min_score
        self.large_photo_score = max(self.min_score, blazeface.LARGE_PHOTO_SCORE)
        # the finest scale's cut, then the coarser scales' (keypoints.blazeface says why they differ)
        self.tile_scores = (blazeface.FINE_SCORE, blazeface.TILE_SCORE)
        self._models: dict[str, bytes] = {}
        self._networks: dict[tuple[str, tuple[int, int]], object] = {}
        self._loading = threading.Lock()

    @property
    def cache_name(self) -> str:
        """Its name and a digest of what its boxes depend on (model file, runtime, score cuts, NMS, box
        mapping, the pyramid and the smallest face looked for)."""
        from keyface.keypoints import blazeface
        from keyface.keypoints.pyramid import PyramidConfig
        settings = repr((blazeface.SHA256, blazeface.INT8_SHA256, "litert", self.min_score, self.large_photo_score,
                         blazeface.LARGE_PHOTO, blazeface.NMS_IOU,
                         sorted(blazeface.TO_MTCNN.items()), self.tile_scores, self.min_face, PyramidConfig(),
                         MIN_FACE_KEPT, MAX_CANDIDATES, FLAT_STD, FILTERS))
        return f"{self.name}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"

    def _net(self, precision: str, shape: tuple[int, int] = (128, 128)):
        """The float32 or int8 network for one input size (height, width), shared by every thread. Each size
        keeps its own interpreters, since resizing one costs ~1 ms and a photo's passes take two or three
        sizes; each model file is read and checked once."""
        with self._loading:
            if precision not in self._models:
                from keyface.keypoints import blazeface
                self._models[precision] = (blazeface.checked_model_file().read_bytes() if precision == "float32" else
                                           blazeface.checked_model_file(blazeface.INT8_FILE, blazeface.INT8_SHA256,
                                                                        blazeface.INT8_SOURCE).read_bytes())
            if (precision, shape) not in self._networks:
                from keyface.keypoints.runtime import LiteNetwork, cpu_threads
                if len(self._networks) >= NETWORK_SIZES_KEPT:  # photos of many sizes: forget the oldest size
                    self._networks.pop(next(iter(self._networks)))
                self._networks[precision, shape] = LiteNetwork(self._models[precision], cpu_threads())
            return self._networks[precision, shape]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Return every face in an RGB uint8 image, largest first, as MTCNN-like boxes."""
        from keyface.keypoints import blazeface
        levels = list(_pyramid_levels(rgb, self.min_face))
        coarsest = levels[-1][1] if levels else rgb  # the whole-photo pass reads few pixels, not the photo's millions
        large = max(rgb.shape[:2]) > blazeface.LARGE_PHOTO
        found = [self._whole_photo(coarsest, _scales(coarsest, rgb), self.large_photo_score if large else self.min_score)]
        found += [self._tiles(image, _scales(image, rgb), self.tile_scores[min(k, 1)])
                  for k, (_, image) in enumerate(levels)]
        boxes, scores = np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])
        if len(scores) > MAX_CANDIDATES:  # a photo of noise can light up thousands of anchors: NMS stays bounded
            top = np.argsort(-scores)[:MAX_CANDIDATES]
            boxes, scores = boxes[top], scores[top]
        faces = [Detection(blazeface.to_mtcnn_box(box), score) for box, score in
                 blazeface.weighted_nms(boxes, scores, blazeface.NMS_IOU)]
        # boxes well under min_face come only from the finest scale's noise: a face that small is not looked for
        faces = [f for f in faces if f.size >= MIN_FACE_KEPT * self.min_face
                 and (f.score >= blazeface.TILE_SCORE or not _flat(rgb, f.box))]
        return sorted(faces, key=lambda f: -f.size)

    def _whole_photo(self, image: np.ndarray, scale: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (photo pixels, BlazeFace's own shape) and scores from the image letterboxed to 128 px: the
        faces that fill a good part of it. `scale` is the image's size over the photo's, per axis."""
        from keyface.keypoints import blazeface
        blob, size, px, py = blazeface.letterbox(image)
        anchors = blazeface.grid_anchors(blazeface.INPUT, blazeface.INPUT)
        boxes, scores = blazeface.decode(self._net("float32").outputs(blob), anchors, min_score)
        return (boxes * size - np.array([px, py, px, py], np.float32)) / scale, scores

    def _tiles(self, level: np.ndarray, scale: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (photo pixels) and scores from every tile of one scale, the net run on each in turn."""
        from keyface.keypoints import blazeface, pyramid
        found = []
        for x0, y0, x1, y1 in pyramid.tiles(*level.shape[:2]):
            tile = _padded(level[y0:y1, x0:x1], y1 - y0, x1 - x0)
            boxes, scores = blazeface.decode(self._net("int8", tile.shape[:2]).outputs(blazeface.to_input(tile)),
                                             blazeface.grid_anchors(*tile.shape[:2]), min_score)
            found.append(((boxes + np.array([x0, y0, x0, y0], np.float32)) / scale, scores))
        return np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])


def _checked_min_face(min_face: float) -> float:
    """The smallest face to look for, in px; under 8 px no detector here sees a face (nor does a NaN)."""
    if not min_face >= 8:
        raise KeyfaceError(f"min_face must be at least 8 px, not {min_face:g}")
    return float(min_face)


def _flat(rgb: np.ndarray, box) -> bool:
    """Whether a quarter of the box's middle is flat: a face has eyes above and a nose and mouth below, so
    the grey levels spread in each quarter; the pyramid's many anchors sometimes fire on a plain wall or
    sky, or beside a face, half on it and half on the plain background."""
    import cv2
    x0, y0, x1, y1 = box
    w, h = max(x1 - x0, 1.0) * 0.6, max(y1 - y0, 1.0) * 0.6  # the middle 60%: eyes to mouth
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    to_patch = np.array([[32 / w, 0, 16 - cx * 32 / w], [0, 32 / h, 16 - cy * 32 / h]], np.float32)
    patch = cv2.warpAffine(rgb, to_patch, (32, 32), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return min(float(grey[y:y + 16, x:x + 16].std()) for y in (0, 16) for x in (0, 16)) < FLAT_STD


def _pyramid_levels(rgb: np.ndarray, min_face: float):
    """(scale, image) for each tiled scale, finest first; each coarser image is made from the one before,
    which reads 16 times fewer pixels than going back to the photo."""
    import cv2
    from keyface.keypoints import pyramid
    height, width = rgb.shape[:2]
    image, made = rgb, 1.0
    for scale in pyramid.scales(height, width, min_face):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # a mild first step (0.75) aliases little under bilinear, at a fifth of area averaging's cost
        method = cv2.INTER_AREA if scale / made < 0.5 else cv2.INTER_LINEAR
        image, made = cv2.resize(image, size, interpolation=method), scale
        yield scale, image


def _scales(image: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """(sx, sy, sx, sy): an image's size over the photo's, to map its boxes back onto the photo."""
    sy, sx = image.shape[0] / photo.shape[0], image.shape[1] / photo.shape[1]
    return np.array([sx, sy, sx, sy], np.float32)


def _padded(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image padded with black at the right and bottom to height x width."""
    if image.shape[:2] == (height, width):
        return image
    out = np.zeros((height, width, 3), np.uint8)
    out[:image.shape[0], :image.shape[1]] = image
    return out


DETECTORS = {"blazeface": BlazeFaceDetector, "mtcnn": MTCNNDetector}
DEFAULT_DETECTOR = "blazeface"  # chosen by measurement: docs/benchmarks.md, `keyface bench speed`


def make_detector(name: str = DEFAULT_DETECTOR, min_face: float | None = None):
    """A face detector by name that finds faces from min_face px wide (default MIN_FACE); nothing is
    loaded until its first detect()."""
    if name not in DETECTORS:
        raise KeyfaceError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name](min_face=MIN_FACE if min_face is None else min_face)


def left_to_right(faces: list) -> list:
    """Faces (anything with a .box) in the order keyface numbers them everywhere: by the box's left edge."""
    return sorted(faces, key=lambda f: float(f.box[0]))


def face_to_json(face: Detection) -> dict:
    """A JSON-ready dict of a face."""
    return {"box": list(face.box), "score": face.score, "landmarks": [list(p) for p in face.landmarks]}


def face_from_json(d: dict) -> Detection:
    """Inverse of face_to_json."""
    return Detection(tuple(d["box"]), d["score"], tuple(tuple(p) for p in d["landmarks"]))


def detection_cache_file(detector: str) -> Path:
    """The per-user cache of one detector's detections, keyed by file content."""
    from keyface.data.paths import user_dir
    return user_dir("cache") / f"detections-{detector}.json"


def cache_key(detector) -> str:
    """What a detector's boxes are cached under: its cache_name, or for a detector without one its name."""
    return getattr(detector, "cache_name", detector.name)


def detect_cached(paths: Iterable[Path], detector, progress: bool = True) -> dict[Path, list[Detection]]:
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
