"""The Python API: a few verbs on photos, in the spirit of face_recognition's. Errors are
`keyface.KeyfaceError`s worded for a library (no command-line flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER

Image = str | os.PathLike | np.ndarray  # a photo's path, or RGB uint8 pixels (H, W, 3)
_LOADED: dict = {}


@dataclass
class FoundFace:
    """A face: box (x0, y0, x1, y1) in pixels, 68 keypoints, unit embedding; after identify, the name
    (None: unknown) and the nearest enrolled people with their distances."""
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    embedding: np.ndarray
    name: str | None = None
    distance: float | None = None
    matches: list[tuple[str, float]] = field(default_factory=list)


def load(embedder: str = DEFAULT_EMBEDDER, models: str | None = None, far: float | None = None,
         precision: str | None = None, min_face: float | None = None):
    """A recogniser (detector, keypoint net, embedder) for the named embedder, loaded once and kept;
    `far` sets identify's share of strangers that may be named (default: the model's, 1%), `precision`
    the embedding network's ("int8" or "float32"; default: the embedder's own), `min_face` the smallest
    face looked for, in pixels wide (default: 24; larger is faster on big photos)."""
    key = (embedder, models, far, precision, min_face)
    if key not in _LOADED:
        _LOADED[key] = build(embedder, models, far=far, precision=precision, min_face=min_face)
    return _LOADED[key]


def build(embedder: str = DEFAULT_EMBEDDER, models: str | None = None, *, model: str | None = None,
          keypoint_model: str | None = None, threshold: float | None = None, several_faces: str = "refuse",
          far: float | None = None, detector: str = "blazeface", precision: str | None = None,
          min_face: float | None = None):
    """A new recogniser, not shared: `model` and `keypoint_model` are files to use instead of the installed
    ones, `threshold` replaces the calibrated cuts, `several_faces` is "refuse" or "largest" (enrol, verify),
    `detector` is "blazeface" (fast) or "mtcnn" (~10x slower end to end), `min_face` the smallest face it
    looks for (px wide, default 24), `precision` is "int8" or "float32" for the embedding network (default:
    the embedder's, int8 for dlib-resnet)."""
    from keyface.keypoints.detector import make_detector
    from keyface.keypoints.predictor import KeypointPredictor, resolve_model
    from keyface.recognition.approaches.registry import load_embedder
    from keyface.recognition.core.pipeline import FacePipeline
    from keyface.recognition.core.service import Recogniser
    pipeline = FacePipeline(KeypointPredictor.load(resolve_model(keypoint_model, models)), make_detector(detector, min_face))
    return Recogniser(pipeline, load_embedder(embedder, models, model, precision), threshold, several_faces, far)


def find_faces(image: Image, recogniser=None) -> list[FoundFace]:
    """Every face in a photo, left to right, with its keypoints and embedding."""
    _, faces, vectors = (recogniser or load()).faces(image)
    found = [FoundFace(tuple(float(v) for v in f.box), f.keypoints, v) for f, v in zip(faces, vectors)]
    return sorted(found, key=lambda f: f.box[0])


def verify(image_a: Image, image_b: Image, recogniser=None) -> tuple[bool, float]:
    """Whether two photos (one face each) show the same person, and the cosine distance."""
    return (recogniser or load()).verify(image_a, image_b)


class Gallery:
    """People enrolled in one SQLite file, for one embedder; use it in a `with` block."""

    def __init__(self, path: str | os.PathLike, recogniser=None, create: bool = True):
        from keyface.recognition.core.gallery import Gallery as Store
        self.recogniser = recogniser or load()
        emb = self.recogniser.embedder
        self.store = Store(Path(path), emb.name, emb.version, emb.dim, create=create)

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def enrol(self, name: str, photos: list[Image]) -> tuple[int, list[str]]:
        """Add one person's photos (one face each) in one transaction: (photos added, why others were not)."""
        return self.recogniser.enrol(self.store, name, list(photos), progress=False)

    def identify(self, image: Image, top: int = 3) -> list[FoundFace]:
        """Every face in a photo, left to right, named when its nearest person is within the open-set cut."""
        found = []
        for r in self.recogniser.identify(self.store, image, k=top):
            best = r.matches[0].distance if r.matches else None
            found.append(FoundFace(tuple(float(v) for v in r.face.box), r.face.keypoints, r.embedding, r.name,
                                   best, [(m.person, m.distance) for m in r.matches]))
        return sorted(found, key=lambda f: f.box[0])

    def people(self) -> dict[str, int]:
        """Each enrolled person's number of photos."""
        return dict(self.store.people())

    def rename(self, old: str, new: str) -> None:
        """Rename a person."""
        self.store.rename(old, new)

    def remove(self, name: str) -> int:
        """Remove a person and their photos; returns how many photos went."""
        return self.store.remove(name)

    def close(self) -> None:
        """Close the gallery file."""
        self.store.close()
