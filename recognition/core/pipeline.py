"""Photo -> faces: detect every face, predict its keypoints, align it for an embedder."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keyface.data.errors import LandmarksNeededError
from keyface.keypoints.crops import transform_points, warp_image
from keyface.detection.boxes import left_to_right
from keyface.keypoints.predictor import KeypointPredictor
from keyface.keypoints.schemes import IBUG68
from keyface.recognition.core.align import alignment_matrix, dlib_anchor_template, dlib_chip_matrix, similarity_transform
from keyface.recognition.core.embedders import FaceBatch, InputSpec
from keyface.recognition.core.search import Match


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
        from keyface.detection.detector import make_detector
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
    crops, points = [], []
    for face in faces:
        matrix = face_matrix(face, spec)
        crops.append(warp_image(image, matrix, spec.size).reshape(spec.size, spec.size, spec.channels))
        points.append(transform_points(face.keypoints, matrix))
    shape = (0, spec.size, spec.size, spec.channels)
    return FaceBatch(np.asarray(crops, np.uint8).reshape(-1, *shape[1:]) if crops else np.zeros(shape, np.uint8),
                     np.asarray(points, np.float32).reshape(-1, 68, 2))
