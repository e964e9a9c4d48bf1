"""Photo -> embedded faces: detect every face, predict its keypoints, align it for an embedder, embed it.
Alignment is a set of pure functions: a face's points -> a similarity transform onto a template -> the crop an
embedder reads. Every embedder has one interface: it says what crop it wants (size, colour mode, template)
and maps a batch of aligned faces to L2-normalised float32 vectors; the gallery only ever sees its name, model
version and dimension.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError, LandmarksNeededError
from keyface.detection.boxes import left_to_right
from keyface.detection.detector import make_detector
from keyface.keypoints.predictor import IBUG68, KeypointPredictor, warp_faces, warp_image
from keyface.recognition.core.search import Match
from keyface.runtime.networks import PRECISIONS, KerasNetwork, file_version, load_lite


@dataclass(frozen=True, repr=False)
class Face:
    """One face in a photo, the one kind every verb returns: the detector's box and score, 68 keypoints in
    photo pixels and the detector's own 5 landmarks where it gave them (eye centres, nose tip, mouth
    corners; image-left first); once embedded, its unit `embedding`; once identified, its nearest people
    (`matches`, best first) and `name` (None: unknown)."""
    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    name: str | None = None
    matches: tuple[Match, ...] | None = None  # None: not identified

    @property
    def distance(self) -> float | None:
        """The nearest enrolled person's cosine distance, once identified."""
        return float(self.matches[0][1]) if self.matches else None  # a Match: (person, distance)

    def __repr__(self) -> str:
        """One short line: box, name and distance; never the keypoints or the embedding."""
        box = ", ".join(f"{float(v):.1f}" for v in self.box)
        distance = "None" if self.distance is None else f"{self.distance:.3f}"
        return f"Face(box=({box}), name={self.name!r}, distance={distance})"

    def to_json(self, number: int | None = None, embedding: bool = False) -> dict:
        """The face as every output gives it (JSON Lines, the HTTP API): its number (left to right, from 1),
        box and keypoints to 0.1 px, score; once identified its name ("unknown" for no one) and matches; the
        embedding (6 decimals) if asked."""
        out = {} if number is None else {"face": number}
        out.update({"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
                    "keypoints": np.round(np.asarray(self.keypoints, float), 1).tolist()})
        if self.matches is not None:
            out["name"] = self.name or "unknown"
            out["matches"] = [{"person": person, "distance": round(float(d), 4)} for person, d in self.matches]
        if embedding and self.embedding is not None:
            out["embedding"] = [round(float(x), 6) for x in self.embedding]
        return out


class FacePipeline:
    """The shared front end of every approach: a face detector, the keypoint net, alignment."""

    def __init__(self, predictor: KeypointPredictor, detector=None):
        if predictor.scheme.n_points != 68:
            raise ValueError("alignment needs a 68-point keypoint model")
        self.predictor = predictor
        self.detector = detector or make_detector()

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face the detector finds, with its keypoints, left to right: the order every output numbers
        faces in ("face 2" is the same face everywhere)."""
        return self.faces_at(rgb, left_to_right(self.detector.detect(rgb)))

    def faces_at(self, rgb: np.ndarray, detections: list) -> list[Face]:
        """Keypoints for faces already detected (keypoints.detector.Detection: live or from the cache)."""
        points = self.predictor.predict(rgb, [d.box for d in detections])
        return [Face(tuple(d.box), d.score, p, np.asarray(d.landmarks, np.float64) if d.landmarks else None)
                for d, p in zip(detections, points)]


# What an embedder reads

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


# Alignment: a face's points onto an embedder's template

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


def _template5(face: Face, spec: InputSpec) -> np.ndarray:
    return alignment_matrix(IBUG68.anchor_points(face.keypoints), spec.size, spec.zoom, spec.shift_y)


def _dlib_mtcnn5(face: Face, spec: InputSpec) -> np.ndarray:
    if face.landmarks is None:  # no stand-in: the point of this alignment is the detector's own points
        raise LandmarksNeededError("the dlib-mtcnn5 alignment needs the detector's 5 landmarks, and this face has none: "
                           "use a detector that gives them (mtcnn)")
    return similarity_transform(face.landmarks, dlib_anchor_template(spec.size))


def _dlib5(face: Face, spec: InputSpec) -> np.ndarray:
    return similarity_transform(IBUG68.anchor_points(face.keypoints), dlib_anchor_template(spec.size))


# How a face becomes a crop: a 2x3 photo-to-crop matrix from the face's points.
ALIGNMENTS = {
    "template5": _template5,  # 5 keypoint anchors onto the ArcFace template (zoom, shift_y)
    "dlib68": lambda face, spec: dlib_chip_matrix(face.keypoints, spec.size),  # dlib's chip, 36 keypoints
    "dlib5": _dlib5,  # 5 keypoint anchors onto dlib's chip
    "dlib-mtcnn5": _dlib_mtcnn5,  # MTCNN's own 5 landmarks onto dlib's chip
}


def face_matrix(face: Face, spec: InputSpec) -> np.ndarray:
    """The 2x3 photo-to-crop matrix of one face for an embedder's input spec."""
    if spec.alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {spec.alignment!r}; known: {', '.join(ALIGNMENTS)}")
    return ALIGNMENTS[spec.alignment](face, spec)


def align_batch(rgb: np.ndarray, faces: list[Face], spec: InputSpec) -> FaceBatch:
    """Aligned crops in the embedder's size and colour mode, and the keypoints moved with them."""
    import cv2
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if spec.channels == 1 else rgb
    crops, points = warp_faces(image, [face_matrix(face, spec) for face in faces], spec.size,
                               [face.keypoints for face in faces])
    shape = (0, spec.size, spec.size, spec.channels)
    return FaceBatch(np.asarray(crops, np.uint8).reshape(-1, *shape[1:]) if crops else np.zeros(shape, np.uint8),
                     np.asarray(points, np.float32).reshape(-1, 68, 2))


# Embedding

class Embedder(ABC):
    """Maps aligned faces to L2-normalised vectors; name + version identify what made a vector."""
    name: str
    spec: InputSpec
    dim: int
    version: str
    metadata: dict
    precision: str = "float32"  # how its network runs: "int8" or "float32" (KerasFileEmbedder chooses)

    @abstractmethod
    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """Unnormalised (N, D) vectors."""

    def embed(self, batch: FaceBatch) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.asarray(self._raw_embed(batch), np.float32))


class KerasFileEmbedder(Embedder):
    """An embedder whose network is a keyface .keras (or .litert) file carrying its input spec in the metadata:
    every approach whose embedding is its network on the aligned crops runs as one of these, under its
    registered `name`; `precision` "int8" runs the network with 8-bit weights in LiteRT, "float32" in Keras."""
    int8_capable = True  # False where _raw_embed is not the network on the crops
    batch = 64  # faces per forward pass: bounds memory on large galleries

    def __init__(self, path: Path, precision: str = "float32", name: str | None = None, batch: int | None = None):
        from keyface.runtime.networks import load_model
        self.batch = batch or self.batch
        if precision not in PRECISIONS:
            raise KeyfaceError(f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}")
        if precision == "int8" and not self.int8_capable:
            raise KeyfaceError(f"{self.name} runs in float32 only, not int8")
        self.precision, self.model = precision, None
        if precision == "int8":  # the Keras network is not loaded at all: no TensorFlow, a shorter start-up
            self.network = load_lite(path, "int8", expect_kind="embedder")
            # int8 vectors differ slightly from float32 ones: its version ends "-int8", so a gallery keeps them apart
            self.metadata, self.version = self.network.metadata, self.network.version
            self.dim = self.network.output_shape[-1]
        else:
            self.model, self.metadata = load_model(path, expect_kind="embedder")
            self.network = KerasNetwork(self.model)
            self.dim, self.version = int(self.model.output_shape[-1]), file_version(path)
        # the registry's name, a subclass's, or what the file says it was made as
        self.name = name or getattr(type(self), "name", None) or self.metadata.get("approach", "")
        self.spec = InputSpec(**self.metadata["input"])  # fields a file predates take their defaults
        self.mirror = bool(self.metadata.get("mirror_average", False))  # embed face + mirror image, summed

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """The network on the crops (and their mirror images, where the model says so), in chunks."""
        crops = np.asarray(batch.crops, np.float32)
        if not self.mirror:
            return self._forward(crops)
        # face and mirror image in one pass: cheaper than two
        both = self._forward(np.concatenate([crops, crops[:, :, ::-1]]))
        return both[: len(crops)] + both[len(crops):]

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """The network on crops in chunks of `batch`."""
        return np.concatenate([self.network(crops[i: i + self.batch]) for i in range(0, len(crops), self.batch)])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)
