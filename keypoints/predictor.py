"""Keypoints on faces in photos: the schemes (which points, by name and group), the one rule that turns a
detector's face box into the square crop a keypoint net sees (and the affine maps between a photo and such
a crop: pixels and points move by the same matrix), the predictor that runs the net on those crops and
maps the points back to the photo, and alignment: the crop an embedder reads, cut by a face's keypoints."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from keyface.data.errors import KeyfaceError, LandmarksNeededError
from keyface.data.paths import models_dir

log = logging.getLogger(__name__)


# Keypoint schemes as data: point names, groups, flip permutation and the NME normaliser.

@dataclass(frozen=True)
class Scheme:
    """A keypoint layout: names, groups of indices, flip permutation and NME eye-corner indices."""
    name: str
    point_names: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    flip: tuple[int, ...]  # flip[i] = index that point i becomes after a horizontal flip
    outer_eye_corners: tuple[int, int]  # the 300-W NME normaliser (inter-ocular distance)
    align_points: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        """Number of keypoints."""
        return len(self.point_names)

    def anchor_points(self, keypoints: np.ndarray) -> np.ndarray:
        """Return the 5 alignment anchors (eye centres, nose tip, mouth corners) as (..., 5, 2)."""
        order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        return np.stack([keypoints[..., list(self.align_points[k]), :].mean(axis=-2) for k in order], -2)


def _ibug68() -> Scheme:
    """The iBUG 300-W 68-point layout; 'left'/'right' are as seen in the image."""
    groups = {"jaw": tuple(range(0, 17)), "brows": tuple(range(17, 27)), "nose": tuple(range(27, 36)),
              "eyes": tuple(range(36, 48)), "mouth": tuple(range(48, 68))}
    # Mirror pairs of the 300-W markup: jaw, brows, nostrils, eye contours, lips.
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    flip = list(range(68))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    names = tuple(f"{g}_{i - idx[0]}" for g, idx in groups.items() for i in idx)
    align = {"left_eye": tuple(range(36, 42)), "right_eye": tuple(range(42, 48)), "nose": (30,),
             "mouth_left": (48,), "mouth_right": (54,)}
    return Scheme("ibug68", names, groups, tuple(flip), (36, 45), align)


def _kaggle15() -> Scheme:
    """Kaggle Facial Keypoints: 15 points; 'left' is the person's left (the image's right)."""
    names = ("left_eye_center", "right_eye_center", "left_eye_inner_corner", "left_eye_outer_corner",
             "right_eye_inner_corner", "right_eye_outer_corner", "left_eyebrow_inner_end",
             "left_eyebrow_outer_end", "right_eyebrow_inner_end", "right_eyebrow_outer_end",
             "nose_tip", "mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip",
             "mouth_center_bottom_lip")
    groups = {"eyes": (0, 1, 2, 3, 4, 5), "brows": (6, 7, 8, 9), "nose": (10,), "mouth": (11, 12, 13, 14)}
    flip = (1, 0, 4, 5, 2, 3, 8, 9, 6, 7, 10, 12, 11, 13, 14)
    # Image-left first so anchors match ibug68's order (image-left eye, image-right eye, ...).
    align = {"left_eye": (1,), "right_eye": (0,), "nose": (10,), "mouth_left": (12,), "mouth_right": (11,)}
    return Scheme("kaggle15", names, groups, flip, (5, 3), align)


IBUG68 = _ibug68()
KAGGLE15 = _kaggle15()
SCHEMES = {s.name: s for s in (IBUG68, KAGGLE15)}


def get_scheme(name: str) -> Scheme:
    """Look a scheme up by name."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown keypoint scheme {name!r}; known: {sorted(SCHEMES)}") from None


# The crop rule, and the maps between a photo and its crops.

# MTCNN boxes run from the brows to the chin; the 68 points reach past them (jaw, brows), so
# the crop is the box's larger side times CROP_SCALE, its centre moved down by CROP_SHIFT_Y of the
# box height. The two numbers were fitted on youtube_faces_68 *training* frames (see README).
CROP_SCALE = 1.3
CROP_SHIFT_Y = 0.14


def crop_box(face_box: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """Square crop (x0, y0, x1, y1) around a detector box, by the rule above."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    side = CROP_SCALE * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + CROP_SHIFT_Y * (y1 - y0)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def pick_labelled_face(face_boxes: list, keypoints: np.ndarray) -> int | None:
    """Index of the detected box whose centre is nearest the labelled keypoints' centre."""
    if not face_boxes:
        return None
    centre = np.nanmean(keypoints, axis=0)
    dists = [np.hypot((b[0] + b[2]) / 2 - centre[0], (b[1] + b[3]) / 2 - centre[1]) for b in face_boxes]
    return int(np.argmin(dists))


def crop_matrix(box: np.ndarray, out_size: int) -> np.ndarray:
    """3x3 matrix mapping the square box (x0, y0, x1, y1) onto an out_size crop."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = out_size / max(x1 - x0, 1e-6)
    return np.array([[s, 0, -x0 * s], [0, s, -y0 * s], [0, 0, 1]], np.float64)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine matrix to (N, 2) points; NaN points stay NaN."""
    m = np.asarray(matrix, np.float64)[:2]
    return (points @ m[:, :2].T + m[:, 2]).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop that a 2x3 (or 3x3) photo-to-crop matrix selects (bilinear, edges replicated)."""
    return cv2.warpAffine(image, np.asarray(matrix, np.float64)[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def square_crops(image: np.ndarray, face_boxes: list, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The size x size crops (N, S, S[, C]) uint8 a keypoint net sees for detector boxes, by the rule above,
    and each crop's 3x3 photo-to-crop matrix."""
    mats = [crop_matrix(crop_box(box), size) for box in face_boxes]
    crops = [warp_image(image, m, size) for m in mats]
    return np.asarray(crops, np.uint8).reshape(len(mats), size, size, *image.shape[2:]), mats


def to_photo(points: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
    """Points (N, P, 2) in crop pixels back in photo pixels, each crop by the inverse of its matrix."""
    return np.array([transform_points(p, np.linalg.inv(m)) for p, m in zip(points, mats)], np.float32)


def warp_faces(image: np.ndarray, mats: list[np.ndarray], size: int, points: list[np.ndarray]
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each face's size x size crop by its 2x3 photo-to-crop matrix, and its points moved with it."""
    return [warp_image(image, m, size) for m in mats], [transform_points(p, m) for p, m in zip(points, mats)]


# The predictor.

DEFAULT_MODEL = "keypoints-68.keras"  # shipped inside the package (keypoints/weights/)
# LiteRT runs the keypoint net with int8 weights: ~0.3 ms a face on one core against ~1 ms in float32, at a
# keypoint NME of 0.0481 against 0.0480 (docs/benchmarks.md); "float32" gives Keras's points to 1e-5 px.
LITE_PRECISION = "int8"


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """RGB uint8 to a model's colour mode: grey (H, W) for 1 channel, else RGB unchanged."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if channels == 1 else rgb


def default_model_path() -> Path:
    """The 68-point model shipped with the package."""
    return Path(str(resources.files("keyface.keypoints") / "weights" / DEFAULT_MODEL))


def resolve_model(name: str | os.PathLike | None, models: str | os.PathLike | None = None) -> Path:
    """A model path from a name: an existing file, a file in the models directory, or the default."""
    if not name:
        return default_model_path()
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (models_dir(models) / "keypoints" / path.name, models_dir(models) / "keypoints" / f"{path.name}.keras"):
        if candidate.is_file():
            return candidate
    raise KeyfaceError(f"keypoint model {name!r} not found (as a file or in {models_dir(models) / 'keypoints'})")


@dataclass
class KeypointPredictor:
    """A loaded keypoint net (run by LiteRT, or by Keras for training) with its scheme and input size."""
    network: Callable[[np.ndarray], np.ndarray]  # (N, S, S, C) float32 crops -> (N, 2P) in [-0.5, 0.5]
    scheme: Scheme
    input_size: int
    channels: int
    metadata: dict
    path: Path
    precision: str = "float32"  # what ran it: LiteRT in int8, or float32 (LiteRT or Keras: the same points)

    @property
    def version(self) -> str:
        """What its points depend on: the model file, and int8 where it ran so (float32 runs agree to 1e-5 px,
        so a float32 run keeps the file's bare version, as caches made before int8 existed have it)."""
        from keyface.runtime.networks import file_version, precise_version
        return precise_version(file_version(self.path), self.precision)

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, runtime: str = "litert", precision: str | None = None,
             models: str | os.PathLike | None = None) -> "KeypointPredictor":
        """Load a keypoint model written by `keyface keypoints train`: a file, a name in the `models` directory,
        or None for the shipped one; "litert" runs it without TensorFlow (converted once, in `precision`,
        default LITE_PRECISION), "keras" as a Keras model."""
        from keyface.runtime.networks import KerasNetwork, load_lite, load_model
        path, precision = resolve_model(model, models), precision or LITE_PRECISION
        if runtime not in ("litert", "keras"):
            raise KeyfaceError(f"unknown runtime {runtime!r}: litert or keras")
        if runtime == "litert":
            network = load_lite(path, precision, expect_kind="keypoints")
            meta = network.metadata
        else:
            model, meta = load_model(path, expect_kind="keypoints")
            network = KerasNetwork(model)
        mcfg = meta["config"]["model"]
        return cls(network, get_scheme(meta["scheme"]), mcfg["input_size"], mcfg["channels"], meta, Path(path),
                   precision if runtime == "litert" else "float32")

    def crops(self, rgb: np.ndarray, boxes: list) -> tuple[np.ndarray, list[np.ndarray]]:
        """Crops (N, S, S, C) float32 for the face boxes, and each crop's 3x3 photo->crop matrix."""
        crops, mats = square_crops(to_channels(rgb, self.channels), boxes, self.input_size)
        return crops.astype(np.float32).reshape(len(boxes), self.input_size, self.input_size, self.channels), mats

    def predict_crops(self, x: np.ndarray) -> np.ndarray:
        """Keypoints (N, P, 2) in crop pixels for a batch of crops."""
        if len(x) == 0:
            return np.zeros((0, self.scheme.n_points, 2), np.float32)
        out = np.asarray(self.network(x)).reshape(len(x), -1, 2)  # (N, 2P) -> (N, P, 2)
        return (out + 0.5) * self.input_size

    def predict(self, rgb: np.ndarray, boxes: list) -> np.ndarray:
        """Keypoints (N, P, 2) in photo pixels for the faces at the given detector boxes."""
        x, mats = self.crops(rgb, boxes)
        return to_photo(self.predict_crops(x), mats)


# Alignment: a face's keypoints onto the template of the crop an embedder reads. Pure functions: a face's
# points -> a similarity transform onto a template -> the crop (insightface's face_align, with dlib's chip too).

class PointedFace(Protocol):
    """What alignment reads of a face (recognition's Face): 68 keypoints in photo pixels, and the detector's
    own 5 landmarks where it gave them."""
    keypoints: np.ndarray
    landmarks: np.ndarray | None


@dataclass(frozen=True)
class InputSpec:
    """The aligned crop an embedder wants."""
    size: int
    channels: int  # 1 = grey, 3 = RGB
    zoom: float = 1.0  # template zoom: < 1 keeps more of the head
    shift_y: float = 0.0  # template shift, a fraction of the size (< 0: face higher in the crop)
    alignment: str = "template5"  # how the crop is cut: see ALIGNMENTS below


@dataclass
class FaceBatch:
    """Aligned faces for an embedder: crops (N, S, S, C) uint8 and 68 keypoints in crop pixels."""
    crops: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


# Where the eyes, nose tip and mouth corners land in a 112x112 crop (the ArcFace template used by
# insightface); image-left eye first, as Scheme.anchor_points returns them.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)


# dlib's mean face (get_face_chip_details): iBUG points 17..67 as fractions of the face box. dlib
# fits a similarity from points 27-54 and 60-64 (brows and the lower lip left out) onto it, and its
# ResNet face descriptor reads a 150 px chip of it with padding 0.25.
DLIB_MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326], [0.426036, 0.609345],
    [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326], [0.121737, 0.216423],
    [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
    [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099], [0.254149, 0.780233],
    [0.340985, 0.745405], [0.428858, 0.727388], [0.490127, 0.742578], [0.551395, 0.727388],
    [0.639268, 0.745405], [0.726104, 0.780233], [0.642159, 0.864805], [0.556721, 0.902192],
    [0.490127, 0.909281], [0.423532, 0.902192], [0.338094, 0.864805], [0.290379, 0.784792],
    [0.428096, 0.778746], [0.490127, 0.785343], [0.552157, 0.778746], [0.689874, 0.784792],
    [0.553364, 0.824182], [0.490127, 0.831803], [0.42689, 0.824182]], np.float64)
DLIB_FIT_POINTS = [i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67)]
DLIB_PADDING = 0.25


def dlib_template(size: int, padding: float = DLIB_PADDING) -> np.ndarray:
    """dlib's mean face as 68 (x, y) points of a size x size chip (the jaw, which dlib has not, is NaN)."""
    points = np.full((68, 2), np.nan)
    points[17:] = (padding + DLIB_MEAN_FACE) / (2 * padding + 1) * size
    return points


def template(size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """The 5-point template for a size x size crop; zoom < 1 shows more of the head, shift_y < 0 moves it up."""
    centred = (TEMPLATE_112 - 56.0) * zoom
    return (centred + 56.0) * (size / 112.0) + np.array([0.0, shift_y * size])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (rotation, uniform scale, shift) mapping src onto dst (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # never a reflection
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max(s.var(0).sum(), 1e-12)
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def alignment_matrix(anchors: np.ndarray, size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """The 2x3 matrix taking a photo's 5 anchors onto the template of a size x size crop."""
    return similarity_transform(anchors, template(size, zoom, shift_y))


def dlib_chip_matrix(keypoints68: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 matrix of dlib's face chip: 36 of the 68 keypoints fitted onto dlib's mean face."""
    return similarity_transform(keypoints68[DLIB_FIT_POINTS], dlib_template(size)[DLIB_FIT_POINTS])


def dlib_anchor_template(size: int) -> np.ndarray:
    """dlib's chip as a 5-anchor template (eye centres, nose tip, mouth corners of its mean face)."""
    return IBUG68.anchor_points(dlib_template(size))


def align_face(image: np.ndarray, anchors: np.ndarray, size: int, zoom: float = 1.0,
               shift_y: float = 0.0) -> np.ndarray:
    """The aligned size x size crop of the face whose 5 anchors are given (grey or RGB in, same out)."""
    return warp_image(image, alignment_matrix(anchors, size, zoom, shift_y), size)


def _template5(face: PointedFace, spec: InputSpec) -> np.ndarray:
    return alignment_matrix(IBUG68.anchor_points(face.keypoints), spec.size, spec.zoom, spec.shift_y)


def _dlib_mtcnn5(face: PointedFace, spec: InputSpec) -> np.ndarray:
    if face.landmarks is None:  # no stand-in: the point of this alignment is the detector's own points
        raise LandmarksNeededError("the dlib-mtcnn5 alignment needs the detector's 5 landmarks, and this face has none: "
                           "use a detector that gives them (mtcnn)")
    return similarity_transform(face.landmarks, dlib_anchor_template(spec.size))


def _dlib5(face: PointedFace, spec: InputSpec) -> np.ndarray:
    return similarity_transform(IBUG68.anchor_points(face.keypoints), dlib_anchor_template(spec.size))


# How a face becomes a crop: a 2x3 photo-to-crop matrix from the face's points.
ALIGNMENTS = {
    "template5": _template5,  # 5 keypoint anchors onto the ArcFace template (zoom, shift_y)
    "dlib68": lambda face, spec: dlib_chip_matrix(face.keypoints, spec.size),  # dlib's chip, 36 keypoints
    "dlib5": _dlib5,  # 5 keypoint anchors onto dlib's chip
    "dlib-mtcnn5": _dlib_mtcnn5,  # MTCNN's own 5 landmarks onto dlib's chip
}


def face_matrix(face: PointedFace, spec: InputSpec) -> np.ndarray:
    """The 2x3 photo-to-crop matrix of one face for an embedder's input spec."""
    if spec.alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {spec.alignment!r}; known: {', '.join(ALIGNMENTS)}")
    return ALIGNMENTS[spec.alignment](face, spec)


def align_batch(rgb: np.ndarray, faces: list[PointedFace], spec: InputSpec) -> FaceBatch:
    """Aligned crops in the embedder's size and colour mode, and the keypoints moved with them."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if spec.channels == 1 else rgb
    crops, points = warp_faces(image, [face_matrix(face, spec) for face in faces], spec.size,
                               [face.keypoints for face in faces])
    shape = (0, spec.size, spec.size, spec.channels)
    return FaceBatch(np.asarray(crops, np.uint8).reshape(-1, *shape[1:]) if crops else np.zeros(shape, np.uint8),
                     np.asarray(points, np.float32).reshape(-1, 68, 2))
