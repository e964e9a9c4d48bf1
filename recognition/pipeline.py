"""Photo -> faces: detect every face, predict its keypoints, align it for an embedder."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keypoints.augment import transform_points
from keypoints.predictor import KeypointPredictor
from keypoints.schemes import IBUG68
from recognition.align import align_face, alignment_matrix
from recognition.embedders import FaceBatch, InputSpec


@dataclass(frozen=True)
class Face:
    """One face in a photo: detector box and score, and 68 keypoints in photo pixels."""
    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    def to_json(self) -> dict:
        """Rounded, JSON-ready."""
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
                "keypoints": np.round(self.keypoints, 2).tolist()}


class FacePipeline:
    """The shared front end of every approach: MTCNN, the keypoint net, 5-point alignment."""

    def __init__(self, predictor: KeypointPredictor, detector=None):
        if predictor.scheme.n_points != 68:
            raise ValueError("alignment needs a 68-point keypoint model")
        from keypoints.detector import MTCNNDetector
        self.predictor = predictor
        self.detector = detector or MTCNNDetector()

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face the detector finds, with its keypoints."""
        found = self.detector.detect(rgb)
        points = self.predictor.predict(rgb, [f.box for f in found])
        return [Face(tuple(f.box), f.score, p) for f, p in zip(found, points)]

    def faces_at(self, rgb: np.ndarray, boxes: list) -> list[Face]:
        """Keypoints for faces whose boxes are already known (benchmarks, cached detections)."""
        points = self.predictor.predict(rgb, boxes)
        return [Face(tuple(b), 1.0, p) for b, p in zip(boxes, points)]


def align_batch(rgb: np.ndarray, faces: list[Face], spec: InputSpec) -> FaceBatch:
    """Aligned crops in the embedder's size and colour mode, and the keypoints moved with them."""
    import cv2
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if spec.channels == 1 else rgb
    crops, points = [], []
    for face in faces:
        anchors = IBUG68.anchor_points(face.keypoints)
        crop = align_face(image, anchors, spec.size, spec.zoom, spec.shift_y)
        crops.append(crop.reshape(spec.size, spec.size, spec.channels))
        points.append(transform_points(face.keypoints, alignment_matrix(anchors, spec.size, spec.zoom, spec.shift_y)))
    shape = (0, spec.size, spec.size, spec.channels)
    return FaceBatch(np.asarray(crops, np.uint8).reshape(-1, *shape[1:]) if crops else np.zeros(shape, np.uint8),
                     np.asarray(points, np.float32).reshape(-1, 68, 2))
