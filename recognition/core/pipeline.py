"""Photo -> identified faces, one way through: find every face (a detector chosen by name), predict its
keypoints, align it for an embedder (keypoints.predictor), embed it; then the recogniser, which puts the
pipeline and one embedder together to identify against a gallery's search index and to verify. Every
embedder has one interface: it says what crop it wants (size, colour mode, template) and maps a batch of
aligned faces to L2-normalised float32 vectors; the gallery only ever sees its name, model version and
dimension. Nothing here stores anything (`recognition.facade.Gallery` keeps people).
"""
from __future__ import annotations

import copy
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from keyface.data.errors import (KeyfaceError, NoFaceError, NotCalibratedError, SeveralFacesError, distance_cut,
                                 false_accept_rate)
from keyface.data.files import shown
from keyface.data.images import PIXELS, as_rgb, image_sha256
from keyface.detection.detector import MIN_FACE, BlazeFaceDetector
from keyface.keypoints.predictor import FaceBatch, InputSpec, KeypointPredictor, align_batch
from keyface.recognition.core.search import Match
from keyface.recognition.core.records import Enrolment
from keyface.runtime.networks import PRECISIONS, KerasNetwork, file_version, load_lite

log = logging.getLogger(__name__)


# eq=False: a face is equal only to itself and hashes by identity (sets, dict keys, `in`); comparing the
# numpy fields would raise, and two detections of one face are not one face
@dataclass(frozen=True, repr=False, eq=False)
class Face:
    """One face in a photo, the one kind every verb returns: the detector's box and score, 68 keypoints in
    photo pixels and the detector's own 5 landmarks where it gave them (eye centres, nose tip, mouth
    corners; image-left first); once embedded, its unit `embedding`; once identified, its nearest people
    (`matches`, best first) and `name` (None: unknown); named by a gallery's softmax head, the head's
    `probability` for its most likely person."""
    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    name: str | None = None
    matches: tuple[Match, ...] | None = None  # None: not identified
    probability: float | None = None  # None: not named by a softmax head

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
        box and keypoints to 0.1 px, score; once identified its name ("unknown" for no one), the nearest
        person's distance and its matches, and
        the softmax head's probability where a head named it; the embedding (6 decimals) if asked."""
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < 1):
            raise KeyfaceError(f"number is the face's place, left to right, 1 or more, not {number!r}")
        out = {} if number is None else {"face": int(number)}
        out.update({"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
                    "keypoints": np.round(np.asarray(self.keypoints, float), 1).tolist()})
        if self.matches is not None:
            out["name"] = self.name or "unknown"
            out["distance"] = None if not self.matches else round(self.distance, 4)  # the nearest person's
            out["matches"] = [{"person": person, "distance": round(float(d), 4)} for person, d in self.matches]
        if self.probability is not None:
            out["probability"] = round(float(self.probability), 4)
        if embedding and self.embedding is not None:
            out["embedding"] = [round(float(x), 6) for x in self.embedding]
        return out


# Finding faces

DETECTORS = ("blazeface", "mtcnn")
DEFAULT_DETECTOR = "blazeface"  # chosen by measurement: docs/benchmarks.md, `keyface bench speed`


def make_detector(name: str = DEFAULT_DETECTOR, min_face: float | None = None):
    """A face detector by name that finds faces from min_face px wide (default MIN_FACE); nothing is
    loaded until its first detect(), and MTCNN's module (and TensorFlow) is imported only when asked for."""
    min_face = MIN_FACE if min_face is None else min_face
    if name == "blazeface":
        return BlazeFaceDetector(min_face=min_face)
    if name == "mtcnn":
        from keyface.detection.mtcnn import MTCNNDetector
        return MTCNNDetector(min_face=min_face)
    raise KeyfaceError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")


class FacePipeline:
    """The shared front end of every approach: a face detector, the keypoint net, alignment."""

    def __init__(self, predictor: KeypointPredictor, detector=DEFAULT_DETECTOR, min_face: float | None = None):
        """`detector` is a detector's name (made here, finding faces from `min_face` px wide) or one already made."""
        if len(predictor.scheme.point_names) != 68:
            raise ValueError("alignment needs a 68-point keypoint model")
        self.predictor = predictor
        self.detector = make_detector(detector, min_face) if isinstance(detector, str) else detector

    def find_faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face the detector finds, with its keypoints, left to right: the order every output numbers
        faces in ("face 2" is the same face everywhere)."""
        return self.faces_at(rgb, self.detector.detect(rgb))

    def faces_at(self, rgb: np.ndarray, detections: list) -> list[Face]:
        """Keypoints for faces already detected (detection.detector.Detection: live or from the cache), each
        found from the detector's whole box and reported by the part inside the photo."""
        points, (height, width) = self.predictor.predict(rgb, [d.box for d in detections]), rgb.shape[:2]
        # detection.detector.within's clip, done here in one step for the photo's faces
        inside = np.clip(np.array([d.box for d in detections], np.float64).reshape(-1, 4), 0, [width, height] * 2)
        return [Face(tuple(float(v) for v in box), d.score, p, np.asarray(d.landmarks, np.float64) if d.landmarks
                     else None) for d, p, box in zip(detections, points, inside)]


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
        if len(batch.crops) == 0:
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


# The recogniser: the pipeline and one embedder together, photos in, embedded faces out. It finds, embeds,
# identifies against a search index and verifies; it stores nothing (`recognition.facade.Gallery` keeps people).

ARRAY_SOURCE = "(image array)"  # the source of a face enrolled from pixels: reindex cannot re-read it
BACKGROUND_FACE = 1 / 3  # faces under a third of a photo's largest face's width are background to enrol and verify
NEARLY_AS_LARGE = 0.85  # a second face this near the largest in width: "the largest" may not be the one meant


ARRAY = "image array"  # what messages call a photo given as pixels


def label(photo) -> str:
    """How a photo is named in messages: its path, printable, or ARRAY."""
    return ARRAY if isinstance(photo, PIXELS) else shown(photo)


class Prepared(NamedTuple):
    """One photo made ready to enrol: a thumbnail of its face (JPEG) and its enrolment record, or the error that
    says why not. Its pixels are not kept: a chunk of large photos would hold gigabytes."""
    thumbnail: bytes | None
    enrolment: Enrolment | None
    error: KeyfaceError | None


def _policy(several_faces: str) -> str:
    """A several-faces policy, checked: "refuse" (enrol and verify need one face) or "largest"."""
    if several_faces not in ("refuse", "largest"):
        raise KeyfaceError(f"several_faces must be 'refuse' or 'largest', not {several_faces!r}")
    return several_faces


def _say_which(name: str, widths: np.ndarray, chosen: int) -> None:
    """Log which of a photo's faces "the largest" took, by its place left to right; a warning when another is
    nearly as large (NEARLY_AS_LARGE), since the photo alone then does not say whose face is meant."""
    runner_up = float(np.sort(widths)[-2])
    close = runner_up >= NEARLY_AS_LARGE * widths[chosen]
    (log.warning if close else log.info)(
        "%s: %d faces found; using the largest, face %d from the left (%.0f px wide; the next: %.0f px)%s", name,
        len(widths), chosen + 1, widths[chosen], runner_up, "; check it is the one meant" if close else "")


class Recogniser:
    """The pipeline and one embedder together: photos in, embedded faces out."""

    def __init__(self, pipeline: FacePipeline, embedder: Embedder, threshold: float | None = None,
                 several_faces: str = "refuse", far: float | None = None):
        self.pipeline, self.embedder = pipeline, embedder
        if threshold is not None:
            distance_cut(threshold, "threshold")
        if far is not None:  # refused now, not at the first identify
            false_accept_rate(far)
        self._threshold, self._far, self._far_cut = threshold, far, None
        if threshold is None and far is not None and "stranger_distances" in getattr(embedder, "metadata", {}):
            self._far_cut = self._cut_at_far()  # a rate beyond what the model keeps: refused now too
        self.several_faces = _policy(several_faces)

    def __repr__(self) -> str:
        return (f"Recogniser(embedder={self.embedder.name!r}, version={self.embedder.version!r}, "
                f"detector={type(self.pipeline.detector).__name__}, several_faces={self.several_faces!r})")

    def taking(self, several_faces: str) -> "Recogniser":
        """This recogniser, or a shallow copy whose enrol and verify follow another several-faces policy
        ("refuse" or "largest"): a shared recogniser keeps its own for everyone else."""
        if several_faces == self.several_faces:
            return self
        chosen = copy.copy(self)
        chosen.several_faces = _policy(several_faces)
        return chosen

    @property
    def threshold(self) -> float:
        """verify's 'same person' distance: given, or the model's best pair accuracy on held-out people."""
        return self._given_or_stored("threshold")

    @property
    def identify_threshold(self) -> float:
        """identify's 'unknown' cut: given; else the cut naming `far` of held-out strangers; else the
        model's stored cut (1% of strangers named)."""
        if self._threshold is None and self._far is not None:
            return self._far_cut if self._far_cut is not None else self._cut_at_far()
        return self._given_or_stored("identify_threshold")

    def _cut_at_far(self) -> float:
        """The cut naming `far` of the held-out strangers whose distances the model file keeps."""
        from keyface.recognition.core.open_set import cut_at_far
        return cut_at_far(np.asarray(self._stored("stranger_distances")), self._far,
                          self.embedder.metadata.get("stranger_count"))

    def _given_or_stored(self, key: str) -> float:
        return float(self._threshold) if self._threshold is not None else float(self._stored(key))

    def _stored(self, key: str):
        """A calibration stored in the model file; never guessed."""
        if key not in self.embedder.metadata:
            raise NotCalibratedError(f"the {self.embedder.name} model carries no calibrated {key}: calibrate the model "
                                     "on held-out people, or give a threshold", self.embedder.name)
        return self.embedder.metadata[key]

    def faces(self, photo: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, list[Face], np.ndarray]:
        """The photo's pixels, every face in it, left to right, each with its embedding, and the embeddings
        as one array (N, D); a path or an RGB array."""
        rgb = as_rgb(photo)
        faces = self.pipeline.find_faces(rgb)
        vectors = self.embedder.embed(align_batch(rgb, faces, self.embedder.spec))
        return rgb, [replace(f, embedding=v) for f, v in zip(faces, vectors)], vectors

    def faces_of(self, photos: list, workers: int = 1) -> tuple[list[tuple], list[KeyfaceError]]:
        """(photo, pixels, faces, embeddings) for each readable photo, in order, and the error of each other;
        `workers` photos at once (threads)."""
        found, errors = [], []
        for photo, result in in_order(self.faces, photos, workers):
            if isinstance(result, KeyfaceError):
                errors.append(result)
            else:
                found.append((photo, *result))
        return found, errors

    def single_face(self, photo: str | os.PathLike | np.ndarray, name: str | None = None) -> Face:
        """The photo's one face, embedded (or its largest, if several_faces='largest'); an error if it has
        none, or several under the default 'refuse' policy: enrolment must be unambiguous. `name` is what
        messages call the photo (default: its path, or "image array")."""
        rgb, face = self._chosen_face(photo, name)
        return replace(face, embedding=self.embedder.embed(align_batch(rgb, [face], self.embedder.spec))[0])

    def _chosen_face(self, photo, name: str | None = None) -> tuple[np.ndarray, Face]:
        """The photo's pixels and the face single_face() takes, not yet embedded."""
        rgb, name = as_rgb(photo), name or label(photo)
        faces = self.pipeline.find_faces(rgb)
        if not faces:
            raise NoFaceError(f"{name}: no face found")
        # boxes stop at the photo's edge (faces_at): a face cut off there is not larger than one in full view
        widths = np.array([f.box[2] - f.box[0] for f in faces])
        i = int(np.argmax(widths))
        # a face under a third of the largest one's width is someone in the background, not a rival for "the" face
        rivals = int((widths >= BACKGROUND_FACE * widths[i]).sum())
        if rivals > 1 and self.several_faces == "refuse":
            background = f" (and {len(faces) - rivals} small in the background)" if len(faces) > rivals else ""
            raise SeveralFacesError(f"{name}: {rivals} faces found{background}; use a photo of one person, crop it, "
                                    "or take the largest face")
        if len(faces) > 1:
            _say_which(name, widths, i)
        return rgb, faces[i]

    def enrolments(self, person: str, photos: list, workers: int = 1,
                   names: list[str] | None = None) -> list[Prepared]:
        """Each photo's pixels and enrolment record, or why it cannot be enrolled; nothing is stored.
        Faces are found on `workers` threads, then embedded together in one pass of the network. `names`:
        what each photo's error calls it (default: its path, or "image array")."""
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max(1, workers)) as pool:
            found = list(pool.map(self._enrolment_face, photos, names or [None] * len(photos)))
        good = [i for i, f in enumerate(found) if not isinstance(f, KeyfaceError)]
        batches = [found[i][0] for i in good]
        vectors = self.embedder.embed(FaceBatch(np.concatenate([b.crops for b in batches]),
                                                np.concatenate([b.keypoints for b in batches]))) if good else []
        out = [Prepared(None, None, f) if isinstance(f, KeyfaceError) else None for f in found]
        for i, vector in zip(good, vectors):
            _, thumbnail, face, sha, source = found[i]
            out[i] = Prepared(thumbnail, Enrolment(person, sha, source, face.box, face.keypoints, vector), None)
        return out

    def _enrolment_face(self, photo, name: str | None = None):
        """(the face aligned for the embedder, its thumbnail, the face, SHA-256, source) of the face a photo would
        enrol, or the error that says why not; the photo's pixels are let go here."""
        from keyface.recognition.core.annotate import face_thumbnail
        try:
            rgb, face = self._chosen_face(photo, name)  # first: it reports a missing or unreadable file
            sha = image_sha256(photo)
        except KeyfaceError as exc:
            return exc
        return (align_batch(rgb, [face], self.embedder.spec), face_thumbnail(rgb, face.box), face, sha,
                ARRAY_SOURCE if isinstance(photo, PIXELS) else str(Path(photo).resolve()))

    def identify(self, index, photo, k: int = 3, by_distance: bool = True) -> list[Face]:
        """Every face in the photo, left to right, with its k nearest people in a search index of a gallery;
        named where the nearest is within the identify cut, else unknown (None). With by_distance False no
        name is given (a softmax head names the faces)."""
        _, faces, vectors = self.faces(photo)
        cut = self.identify_threshold if by_distance else None
        named = []
        for face, matches in zip(faces, index.search(vectors, k)):
            known = by_distance and bool(matches) and matches[0].distance <= cut
            named.append(replace(face, matches=tuple(matches), name=matches[0].person if known else None))
        return named

    def verify(self, photo_a, photo_b, threshold: float | None = None) -> tuple[bool, float]:
        """Same person or not (within `threshold`, by default the calibrated one), and the cosine distance
        between the two photos' faces."""
        return self.same_person(self.single_face(photo_a), self.single_face(photo_b), threshold)

    def same_person(self, a: Face, b: Face, threshold: float | None = None) -> tuple[bool, float]:
        """verify() for two faces already embedded: within `threshold` (default the calibrated one), and
        their cosine distance."""
        distance = max(0.0, float(1.0 - np.dot(a.embedding, b.embedding)))  # a photo and itself: 0, not -1e-7
        return distance <= (self.threshold if threshold is None else threshold), distance


def in_order(work: Callable, items: Iterable, workers: int = 1) -> Iterator[tuple]:
    """(item, work(item)) for each item, computed on `workers` threads and yielded in the order given, each as
    soon as it and those before it are done; a KeyfaceError is yielded as the item's result, not raised, so
    the others go on. At most 2 x workers items are taken ahead (each holds its photo's pixels while it runs)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    def guarded(item):
        try:
            return work(item)
        except KeyfaceError as exc:
            return exc
    if workers <= 1:  # no thread: tracebacks and profiles stay plain
        yield from ((item, guarded(item)) for item in items)
        return
    pool, running = ThreadPoolExecutor(workers), deque()
    try:
        for item in items:
            running.append((item, pool.submit(guarded, item)))
            if len(running) >= 2 * workers:
                item, done = running.popleft()
                yield item, done.result()
        while running:
            item, done = running.popleft()
            yield item, done.result()
    finally:  # also when the caller stops early: photos not yet started are dropped, not waited for
        pool.shutdown(wait=False, cancel_futures=True)
