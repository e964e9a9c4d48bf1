"""What the user commands do, on numpy arrays and paths: enrol, identify, verify, embed, reindex."""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError, NoFaceError, NotCalibratedError, SeveralFacesError
from keyface.data.files import shown
from keyface.data.images import as_rgb, image_sha256
from keyface.recognition.core.embedders import Embedder, FaceBatch
from keyface.recognition.core.gallery import Enrolment, Gallery, GalleryConflictError
from keyface.recognition.core.pipeline import Face, FacePipeline, align_batch
from keyface.recognition.core.search import Match

log = logging.getLogger(__name__)


ARRAY_SOURCE = "(image array)"
BACKGROUND_FACE = 1 / 3  # faces under a third of a photo's largest face's width are background to enrol and verify
ENROL_CHUNK = 32  # photos found, then embedded together: one pass of the network, memory bounded  # the source of a face enrolled from pixels: reindex cannot re-read it


def label(photo) -> str:
    """How a photo is named in messages: its path, printable, or 'image array'."""
    return "image array" if isinstance(photo, np.ndarray) else shown(photo)


@dataclass
class FaceResult:
    """One face in a photo with its embedding and, after identification, its matches."""
    face: Face
    embedding: np.ndarray
    matches: list[Match]
    name: str | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The face's box, (x0, y0, x1, y1) in photo pixels."""
        return self.face.box

    def to_json(self, number: int) -> dict:
        """The identified face as the CLI's JSON Lines and the HTTP API give it: name or 'unknown', matches."""
        return {**self.face.numbered_json(number), "name": self.name or "unknown",
                "matches": [{"person": m.person, "distance": round(float(m.distance), 4)} for m in self.matches]}


class Recogniser:
    """The pipeline and one embedder together: photos in, embedded faces out."""

    def __init__(self, pipeline: FacePipeline, embedder: Embedder, threshold: float | None = None,
                 several_faces: str = "refuse", far: float | None = None):
        self.pipeline, self.embedder = pipeline, embedder
        self._threshold, self._far = threshold, far
        if several_faces not in ("refuse", "largest"):
            raise ValueError(f"several_faces must be 'refuse' or 'largest', not {several_faces!r}")
        self.several_faces = several_faces

    def taking(self, several_faces: str) -> "Recogniser":
        """This recogniser, or a shallow copy whose enrol and verify follow another several-faces policy
        ("refuse" or "largest"): a shared recogniser keeps its own for everyone else."""
        if several_faces == self.several_faces:
            return self
        if several_faces not in ("refuse", "largest"):
            raise ValueError(f"several_faces must be 'refuse' or 'largest', not {several_faces!r}")
        chosen = copy.copy(self)
        chosen.several_faces = several_faces
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
            from keyface.recognition.core.open_set import cut_at_far
            return cut_at_far(np.asarray(self._stored("stranger_distances")), self._far,
                              self.embedder.metadata.get("stranger_count"))
        return self._given_or_stored("identify_threshold")

    def _given_or_stored(self, key: str) -> float:
        return float(self._threshold) if self._threshold is not None else float(self._stored(key))

    def _stored(self, key: str):
        """A calibration stored in the model file; never guessed."""
        if key not in self.embedder.metadata:
            raise NotCalibratedError(f"the {self.embedder.name} model carries no calibrated {key}: calibrate the model "
                                     "on held-out people, or give a threshold", self.embedder.name)
        return self.embedder.metadata[key]

    def faces(self, photo: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, list[Face], np.ndarray]:
        """The photo's pixels, every face in it and their embeddings (N, D); a path or an RGB array."""
        rgb = as_rgb(photo)
        faces = self.pipeline.find_faces(rgb)
        return rgb, faces, self.embedder.embed(align_batch(rgb, faces, self.embedder.spec))

    def faces_of(self, photos: list) -> tuple[list[tuple], list[KeyfaceError]]:
        """(photo, pixels, faces, embeddings) for each readable photo, and the error of each other."""
        found, errors = [], []
        for photo in photos:
            try:
                found.append((photo, *self.faces(photo)))
            except KeyfaceError as exc:
                errors.append(exc)
        return found, errors

    def single_face(self, photo: str | os.PathLike) -> tuple[Face, np.ndarray]:
        """The photo's one face (or its largest, if several_faces='largest'); an error if it has none,
        or several under the default 'refuse' policy: enrolment must be unambiguous."""
        rgb, face = self._chosen_face(photo)
        return face, self.embedder.embed(align_batch(rgb, [face], self.embedder.spec))[0]

    def _chosen_face(self, photo) -> tuple[np.ndarray, Face]:
        """The photo's pixels and the face single_face() takes, not yet embedded."""
        rgb = as_rgb(photo)
        faces = self.pipeline.find_faces(rgb)
        if not faces:
            raise NoFaceError(f"{label(photo)}: no face found")
        widths = np.array([f.box[2] - f.box[0] for f in faces])
        i = int(np.argmax(widths))
        # a face under a third of the largest one's width is someone in the background, not a rival for "the" face
        rivals = int((widths >= BACKGROUND_FACE * widths[i]).sum())
        if rivals > 1 and self.several_faces == "refuse":
            raise SeveralFacesError(f"{label(photo)}: {rivals} faces found; use a photo of one person, crop it, "
                               "or take the largest face")
        if len(faces) > 1:
            log.info("%s: %d faces found; using the largest", label(photo), len(faces))
        return rgb, faces[i]

    def enrol(self, gallery: Gallery, person: str, photos: list, progress: bool = True,
              workers: int = 1) -> tuple[int, list[KeyfaceError]]:
        """Add a person's photos in one transaction; a bad photo's error is returned, not raised: (added, errors).
        The faces of the next chunk of photos are found while this chunk's are embedded; the gallery is
        written from this thread only."""
        from concurrent.futures import ThreadPoolExecutor
        from tqdm import tqdm
        from keyface.recognition.core.annotate import face_thumbnail
        from keyface.recognition.core.gallery import check_name
        person = check_name(person)
        chunks = [photos[i: i + ENROL_CHUNK] for i in range(0, len(photos), ENROL_CHUNK)]
        faces, errors, thumb = [], [], None
        bar = tqdm(total=len(photos), desc=f"enrolling {person}", disable=not progress or len(photos) < 5,
                   unit="photo")
        with ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(self._find, chunks[0], workers) if chunks else None
            for k, chunk in enumerate(chunks):
                found = pending.result()
                if k + 1 < len(chunks):
                    pending = ahead.submit(self._find, chunks[k + 1], workers)
                for photo, seen, (enrolment, error) in zip(chunk, found, self._embed_found(person, found)):
                    owner = None if enrolment is None else gallery.other_owner(enrolment.sha256, person)
                    if owner is not None:
                        error = GalleryConflictError(f"{label(photo)}: already enrolled as {owner!r}")
                    if error:
                        errors.append(error)
                    else:
                        faces.append(enrolment)
                        thumb = thumb or face_thumbnail(seen[0], enrolment.box)  # the page shows one a person
                bar.update(len(chunk))
        bar.close()
        added = gallery.add(faces)
        if thumb:
            gallery.set_thumbnail(person, thumb)  # kept only if the person has none yet
        return added, errors

    def enrolments(self, person: str, photos: list,
                   workers: int = 1) -> list[tuple[Enrolment | None, KeyfaceError | None]]:
        """Each photo's enrolment record or why it cannot be enrolled; nothing is stored.
        Faces are found on `workers` threads, then embedded together in one pass of the network."""
        return self._embed_found(person, self._find(photos, workers))

    def _find(self, photos: list, workers: int) -> list:
        """_enrolment_face() of each photo, on `workers` threads."""
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max(1, workers)) as pool:
            return list(pool.map(self._enrolment_face, photos))

    def _embed_found(self, person: str, found: list) -> list[tuple[Enrolment | None, KeyfaceError | None]]:
        """Enrolment records for found faces, embedded in one pass; the errors of the others."""
        good = [i for i, f in enumerate(found) if not isinstance(f, KeyfaceError)]
        batches = [align_batch(found[i][0], [found[i][1]], self.embedder.spec) for i in good]
        vectors = self.embedder.embed(FaceBatch(np.concatenate([b.crops for b in batches]),
                                                np.concatenate([b.keypoints for b in batches]))) if good else []
        out: list = [(None, f) if isinstance(f, KeyfaceError) else None for f in found]
        for i, vector in zip(good, vectors):
            _, face, sha, source = found[i]
            out[i] = (Enrolment(person, sha, source, face.box, face.keypoints, vector), None)
        return out

    def _enrolment_face(self, photo):
        """(pixels, face, SHA-256, source) of the face a photo would enrol, or the error that says why not."""
        try:
            rgb, face = self._chosen_face(photo)  # first: it reports a missing or unreadable file
            sha = image_sha256(photo)
        except KeyfaceError as exc:
            return exc
        return rgb, face, sha, ARRAY_SOURCE if isinstance(photo, np.ndarray) else str(Path(photo).resolve())

    def identify(self, gallery: Gallery, photo: str | os.PathLike, k: int = 3, index: str = "exact",
                 by_distance: bool = True) -> list[FaceResult]:
        """Every face in the photo with its k best matches; name is None beyond the identify cut (unknown).
        With by_distance False no name is given (a softmax head names the faces)."""
        return self.identify_with_index(gallery.index(index), photo, k, by_distance)

    def identify_with_index(self, index, photo, k: int = 3, by_distance: bool = True) -> list[FaceResult]:
        """identify() against a search index already built from a gallery (a server keeps one); faces left
        to right, as the pipeline finds them."""
        _, faces, vectors = self.faces(photo)
        results = []
        cut = self.identify_threshold if by_distance else None
        for face, vector, matches in zip(faces, vectors, index.search(vectors, k)):
            known = by_distance and bool(matches) and matches[0].distance <= cut
            results.append(FaceResult(face, vector, matches, matches[0].person if known else None))
        return results

    def verify(self, photo_a, photo_b, threshold: float | None = None) -> tuple[bool, float]:
        """Same person or not (within `threshold`, by default the calibrated one), and the cosine distance
        between the two photos' faces."""
        (_, va), (_, vb) = self.single_face(photo_a), self.single_face(photo_b)
        distance = float(1.0 - np.dot(va, vb))
        return distance <= (self.threshold if threshold is None else threshold), distance


def reindex(source: Path, recogniser: Recogniser, out: Path) -> tuple[int, list[str]]:
    """Re-embed every photo of a gallery with another embedder into a new gallery file."""
    from keyface.recognition.core.gallery import read_photos
    by_person: dict[str, list[str]] = {}
    for person, sha, path in read_photos(source):
        if not Path(path).is_file() or image_sha256(path) != sha:
            raise KeyfaceError(f"cannot reindex: {shown(path)} (enrolled for {person}) is missing or changed; "
                               f"nothing was modified")
        by_person.setdefault(person, []).append(path)
    target = Gallery(out, recogniser.embedder.name, recogniser.embedder.version, recogniser.embedder.dim)
    added, errors = 0, []
    try:
        for person, photos in by_person.items():
            n, errs = recogniser.enrol(target, person, photos, progress=False)
            added, errors = added + n, errors + errs
    finally:
        target.close()
    return added, errors
