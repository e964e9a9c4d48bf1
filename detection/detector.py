"""Finding faces: what every detector gives (a `Detection`: box, score, landmarks), the boxes' geometry
(overlaps, merging, the left-to-right order faces are numbered in everywhere), and BlazeFace, the default
detector, finding faces from `min_face` px wide (24 by default, ~10 px between the eyes) up to the whole
photo, with boxes the keypoint net's crop rule was fitted to (MTCNN's; BlazeFace's are mapped onto them).
MTCNN is in `detection.mtcnn`; `recognition.core.pipeline.make_detector` chooses between them by name.

BlazeFace short-range is MediaPipe's face detector, a 230 KB TFLite file run by LiteRT. The file ships in
the package; it is MediaPipe's `face_detection_short_range.tflite` from the PyPI wheel `mediapipe==0.10.14`
(Apache-2.0), checked by its SHA-256 before use and read as data by LiteRT (built-in operators only; no
TensorFlow, nothing executed). Made for 128 px inputs in which a face fills a good part of the frame, it is
fully convolutional: run on a larger input it sees faces of ~18-80 px of that input anywhere in it, which
is how keyface finds small faces in big photos.

Where it looks (the end of this file): a detector that sees faces between ~20 and ~80 px of its own input
finds every face from `min_face` px up to the whole photo when it runs at scales 1/4 apart, the finest
one putting a `min_face` face at ~20 px, down to the scale where the photo itself is a few times the
detector's input; one whole-photo pass covers the rest. Each scale is cut into tiles that overlap by
more than the largest face that scale must find, so that every face lies whole inside at least one
tile and no tile is large enough to make memory grow with the photo. On a photo small enough for the
whole-photo pass to show a min_face face at ~12 px (a portrait), the finer scale runs only when that
pass hints at a face it could not make out.
"""
from __future__ import annotations

import functools
import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.runtime.networks import LiteNetwork

# What every detector gives

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


def drop_nested(kept: list[tuple[np.ndarray, float]], share: float) -> list[tuple[np.ndarray, float]]:
    """Boxes after NMS, less each one whose overlap with a higher-scoring box covers `share` of the smaller:
    two boxes of one face at two scales, which their IoU (small when one is far larger) leaves apart."""
    kept = sorted(kept, key=lambda pair: -pair[1])
    boxes = np.array([box for box, _ in kept], np.float64).reshape(-1, 4)
    inter, area, other = _intersections(boxes, boxes)
    nested = inter / np.maximum(np.minimum(area, other), 1e-9) >= share
    alive = np.ones(len(kept), bool)
    for i in range(len(kept)):
        if alive[i]:
            alive[i + 1:] &= ~nested[i, i + 1:]
    return [pair for pair, keep in zip(kept, alive) if keep]


def checked_min_face(min_face: float) -> float:
    """The smallest face to look for, in px; under 8 px no detector here sees a face (nor does a NaN)."""
    if isinstance(min_face, (bool, str)) or not isinstance(min_face, (int, float, np.number)) or not min_face >= 8:
        raise KeyfaceError(f"min_face must be a number of pixels, 8 or more, not {min_face!r}")
    return float(min_face)


def within(box, width: int, height: int) -> tuple[float, float, float, float]:
    """A face's box as far as it lies inside its width x height photo: what every output reports, so that a crop
    by it is the face (a face cut by the edge is boxed to the edge; its keypoints may lie beyond)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))


def left_to_right(faces: list) -> list:
    """Faces (anything with a .box) in the order keyface numbers them everywhere: by the box's left edge."""
    return sorted(faces, key=lambda f: float(f.box[0]))


# BlazeFace

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "blazeface-short-range.tflite"
SOURCE = ("mediapipe/modules/face_detection/face_detection_short_range.tflite from PyPI mediapipe==0.10.14 "
          "(Apache-2.0)")
SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
# The same network in int8 (detection.blazeface_int8, `keyface weights blazeface-int8`), for the pyramid's
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
NESTED = 0.8  # two boxes sharing this much of the smaller one's area are one face: the lower-scoring goes
# BlazeFace's box runs from the brows to the chin; the keypoint crop rule was fitted to MTCNN's
# taller box. Fitted as medians over 2,995 LFW + youtube_faces_68 training faces found by both
# (s = sqrt(w * h) of the BlazeFace box): centre shift and MTCNN-like width and height.
TO_MTCNN = {"dx": -0.0158, "dy": -0.1144, "w": 0.8622, "h": 1.1691}
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
FILTERS = "size >= MIN_FACE_KEPT * min_face; flat quarters refused under the coarse cut; then nested boxes dropped"
NETWORK_SIZES_KEPT = 8
# Small photos (a portrait): where the whole-photo pass shows a min_face face GATE_FACE_PX wide or more,
# such a face lights some anchor up at least weakly, so the finer scales run only when an anchor away from
# the faces found scores GATE_SCORE or more. On 864 LFW portraits with a 24-28 px face pasted in the
# background, that misses one face more than the finer scale on every photo (8 against 7; the whole-photo
# pass alone misses 257), and 31% of LFW's own photos skip it (docs/benchmarks.md, "A portrait's cost").
GATE_FACE_PX = 12.0
GATE_SCORE = 0.07
HINT_INSIDE = 0.5  # a weak anchor's box lying this much inside a face found is that face, not another


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


class BlazeFaceDetector:
    """BlazeFace short-range, run by LiteRT over the whole photo and, fully
    convolutionally, over the tiles of an image pyramid (the end of this file): every face from `min_face`
    px wide up to the whole photo. Loaded on first use."""

    name = "blazeface"

    def __init__(self, min_score: float | None = None, min_face: float = MIN_FACE):
        self.min_face = checked_min_face(min_face)
        self.min_score = MIN_SCORE if min_score is None else min_score
        self.large_photo_score = max(self.min_score, LARGE_PHOTO_SCORE)
        # the finest scale's cut, then the coarser scales' (the score cuts above say why they differ)
        self.tile_scores = (FINE_SCORE, TILE_SCORE)
        self._models: dict[str, bytes] = {}
        self._networks: dict[tuple[str, tuple[int, int]], object] = {}
        self._loading = threading.Lock()

    @property
    def cache_name(self) -> str:
        """Its name and a digest of what its boxes depend on (model file, runtime, score cuts, NMS, box
        mapping, the pyramid and the smallest face looked for, when a portrait skips the finest scale)."""
        settings = repr((SHA256, INT8_SHA256, "litert", self.min_score, self.large_photo_score, LARGE_PHOTO, NMS_IOU,
                         NESTED, sorted(TO_MTCNN.items()), self.tile_scores, self.min_face, PyramidConfig(),
                         MIN_FACE_KEPT, MAX_CANDIDATES, FLAT_STD, FILTERS, GATE_FACE_PX, GATE_SCORE, HINT_INSIDE))
        return f"{self.name}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"

    def _net(self, precision: str, shape: tuple[int, int] = (128, 128)):
        """The float32 or int8 network for one input size (height, width), shared by every thread. Each size
        keeps its own interpreters, since resizing one costs ~1 ms and a photo's passes take two or three
        sizes; each model file is read and checked once."""
        with self._loading:
            if precision not in self._models:
                path = checked_model_file() if precision == "float32" else checked_model_file(
                    INT8_FILE, INT8_SHA256, INT8_SOURCE)
                self._models[precision] = path.read_bytes()
            if (precision, shape) not in self._networks:
                if len(self._networks) >= NETWORK_SIZES_KEPT:  # photos of many sizes: forget the oldest size
                    self._networks.pop(next(iter(self._networks)))
                self._networks[precision, shape] = LiteNetwork(self._models[precision])
            return self._networks[precision, shape]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in an RGB uint8 image as MTCNN-like boxes, left to right (the order every output numbers
        faces in)."""
        plan = list(_pyramid_levels(rgb, self.min_face))
        coarsest = plan[-1][0] if plan else rgb  # the whole-photo pass reads few pixels, not the photo's millions
        large = max(rgb.shape[:2]) > LARGE_PHOTO
        # the whole-photo pass sees a min_face face well enough to hint at it, and faces are cut above the hints
        sees_small = self.min_face * INPUT / max(rgb.shape[:2]) >= GATE_FACE_PX
        hinted = bool(plan) and sees_small and self.min_score > GATE_SCORE
        whole, hint = self._whole_photo(coarsest, _scales(coarsest, rgb), self.large_photo_score if large else
                                         self.min_score, GATE_SCORE if hinted else 1.0)
        if hinted and not hint:  # nothing away from the faces found: no face too small for that pass
            plan = []
        found = [whole] + [self._tiles(image, cuts, _scales(image, rgb), self.tile_scores[min(k, 1)])
                           for k, (image, cuts) in enumerate(plan)]
        return self._merged(rgb, np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found]))

    def _merged(self, rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> list[Detection]:
        """Candidate boxes (photo pixels) merged by NMS, mapped to MTCNN-like boxes and filtered, left to right."""
        if len(scores) > MAX_CANDIDATES:  # a photo of noise can light up thousands of anchors: NMS stays bounded
            top = np.argsort(-scores)[:MAX_CANDIDATES]
            boxes, scores = boxes[top], scores[top]
        merged = weighted_nms(boxes, scores, NMS_IOU)
        boxes = np.array([to_mtcnn_box(box) for box, _ in merged], np.float64).reshape(-1, 4)
        scores = [score for _, score in merged]
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # Detection.size, for every box at once
        # boxes well under min_face come only from the finest scale's noise: a face that small is not looked for
        kept = [(boxes[i], scores[i]) for i in range(len(boxes)) if sides[i] >= MIN_FACE_KEPT * self.min_face and
                (scores[i] >= TILE_SCORE or not _flat(rgb, boxes[i]))]
        # after those cuts: a box they drop must not take a face's box with it
        return left_to_right([Detection(tuple(float(v) for v in box), score) for box, score in drop_nested(kept, NESTED)])

    def _whole_photo(self, image: np.ndarray, scale: np.ndarray, min_score: float, hint_score: float = 1.0
                     ) -> tuple[tuple[np.ndarray, np.ndarray], bool]:
        """Boxes (photo pixels, BlazeFace's own shape) and scores from the image letterboxed to 128 px: the
        faces that fill a good part of it; and whether an anchor away from them scores `hint_score` or more
        (a face too small for this pass may be there). `scale` is the image's size over the photo's, per axis."""
        blob, size, px, py = letterbox(image)
        boxes, scores = decode(self._net("float32").outputs(blob), grid_anchors(INPUT, INPUT), min(min_score, hint_score))
        boxes = (boxes * size - np.array([px, py, px, py], np.float32)) / scale
        sure = scores >= min_score
        hint = bool((inside_share(boxes[~sure], boxes[sure]) <= HINT_INSIDE).any())
        return (boxes[sure], scores[sure]), hint

    def _tiles(self, level: np.ndarray, cuts: list, scale: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (photo pixels) and scores from every tile of one scale, the net run on each in turn."""
        found = []
        for x0, y0, x1, y1 in cuts:
            tile = _padded(level[y0:y1, x0:x1], y1 - y0, x1 - x0)
            boxes, scores = decode(self._net("int8", tile.shape[:2]).outputs(to_input(tile)),
                                   grid_anchors(*tile.shape[:2]), min_score)
            found.append(((boxes + np.array([x0, y0, x0, y0], np.float32)) / scale, scores))
        return np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])


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
    """(image, tiles) for each tiled scale, finest first; each coarser image is made from the one before,
    which reads 16 times fewer pixels than going back to the photo."""
    import cv2
    image, made = rgb, 1.0
    for scale, size, cuts in levels(*rgb.shape[:2], min_face):
        # a mild first step (0.75) aliases little under bilinear, at a fifth of area averaging's cost
        method = cv2.INTER_AREA if scale / made < 0.5 else cv2.INTER_LINEAR
        image, made = cv2.resize(image, size, interpolation=method), scale
        yield image, cuts


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


# Where it looks: the scales and tiles of the image pyramid.

@dataclass(frozen=True)
class PyramidConfig:
    """How to search a photo: the faces a scale is for, the scales' step, and how tiles are cut."""
    face_px: float = 18.0    # a min_face face is made this wide (px) at the finest scale
    step: float = 4.0        # each coarser scale is this much smaller: it finds faces 20-80 px of its own
    whole_px: int = 128      # the whole-photo pass's input; scales whose image is under ~1.25x of it add nothing
    max_upscale: float = 2.0 # a min_face under face_px / 2 is not looked for in enlarged pixels
    tile: int = 1024         # the longest tile side (px of the scaled image); memory stays bounded by it
    overlap: int = 96        # larger than any face a scale must find (80 px) plus margin
    align: int = 16          # the detector's coarsest stride: tiles are multiples of it


def scales(height: int, width: int, min_face: float, cfg: PyramidConfig = PyramidConfig()) -> list[float]:
    """The tiled scales for a photo, finest first; the whole-photo pass is not among them."""
    side = max(height, width)
    scale = min(cfg.face_px / max(float(min_face), 1.0), cfg.max_upscale)
    out = []
    while side * scale > cfg.whole_px * 1.25:
        out.append(scale)
        scale /= cfg.step
    return out


def levels(height: int, width: int, min_face: float, cfg: PyramidConfig = PyramidConfig()
           ) -> list[tuple[float, tuple[int, int], list[tuple[int, int, int, int]]]]:
    """The whole search plan for a photo, finest scale first: each scale, the (width, height) of the photo
    resized to it, and the tiles cutting that image."""
    out = []
    for scale in scales(height, width, min_face, cfg):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        out.append((scale, size, tiles(size[1], size[0], cfg)))
    return out


def tiles(height: int, width: int, cfg: PyramidConfig = PyramidConfig()) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) covering a height x width image: as few as the longest side allows, equal in
    size (a multiple of cfg.align; the last may reach past the image, which is padded), overlapping by
    at least cfg.overlap."""
    xs, tile_w = _cuts(width, cfg)
    ys, tile_h = _cuts(height, cfg)
    return [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]


def _cuts(length: int, cfg: PyramidConfig) -> tuple[list[int], int]:
    """Start offsets along one side and the tile length there."""
    n = max(1, math.ceil((length - cfg.overlap) / (cfg.tile - cfg.overlap)))
    size = _aligned(math.ceil((length + (n - 1) * cfg.overlap) / n), cfg.align)
    if n == 1:
        return [0], size
    stride = (length - size) / (n - 1)
    return [int(round(i * stride)) for i in range(n)], size


def _aligned(n: int, align: int) -> int:
    """n rounded up to a multiple of align."""
    return -(-n // align) * align
