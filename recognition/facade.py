"""The one way in: what the `keyface` command, `keyface serve` and the Python API all call.

`build` and `load` make a recogniser (detector, keypoint net, embedder) by the embedder's name; `Gallery` is
the one gallery type, people kept in a store (a SQLite file or PostgreSQL) and recognised by one recogniser;
`recognition.answers` gives every answer its one JSON shape. Read `identify`
top to bottom: Gallery.identify -> Recogniser.identify (find, embed, search) -> Face.
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from keyface.data.errors import EmptyGalleryError, GalleryError, KeyfaceError, OtherModelError, false_accept_rate
from keyface.data.files import shown
from keyface.data.images import PIXELS
from keyface.data.paths import checked_address, is_database_uri, shown_location
# MadeOnce: the server keeps its recognisers as load does; embedder_for: the entry points choose as open_gallery
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER, MadeOnce, embedder_for, registered
from keyface.recognition.core.gallery_check import gallery_exists, made_by  # made_by: for the entry points too
from keyface.recognition.core.pipeline import Face, FacePipeline, Prepared, Recogniser, in_order  # many photos at once
# check_name: the one rule for a person's name, for the entry points too
from keyface.recognition.core.records import Enrolment, check_name
from keyface.recognition.core.store import SQLiteStore, check_made_by
from keyface.recognition.gallery_people import GalleryPeople
from keyface.runtime.networks import split_version

MIN_PROBABILITY = 0.5  # a softmax head's: below it, a face is unknown


_LOADED = MadeOnce(lambda embedder, models, far, precision, min_face: build(
    embedder, models, far=far, precision=precision, min_face=min_face))


def build(embedder: str = DEFAULT_EMBEDDER, models: str | None = None, *, model: str | None = None,
          keypoint_model: str | None = None, threshold: float | None = None, several_faces: str = "refuse",
          far: float | None = None, detector: str = "blazeface", precision: str | None = None,
          min_face: float | None = None) -> Recogniser:
    """A new recogniser, not shared: `model` and `keypoint_model` are files to use instead of the installed
    ones, `threshold` replaces the calibrated cuts, `several_faces` is "refuse" or "largest" (enrol, verify),
    `detector` is "blazeface" (fast) or "mtcnn" (~10x slower end to end), `min_face` the smallest face it
    looks for (px wide, default 24), `precision` is "int8" or "float32" for the embedding and keypoint
    networks (default: int8 keypoints, and the embedder's own, int8 for dlib-resnet)."""
    from keyface.keypoints.predictor import KeypointPredictor
    from keyface.recognition.approaches.registry import load_embedder
    if far is not None:  # before seconds of loading, not after
        false_accept_rate(far)
    keypoints = KeypointPredictor.load(keypoint_model, precision=precision, models=models)
    pipeline = FacePipeline(keypoints, detector, min_face)
    return Recogniser(pipeline, load_embedder(embedder, models, model, precision), threshold, several_faces, far)


def load(embedder: str = DEFAULT_EMBEDDER, models: str | None = None, far: float | None = None,
         precision: str | None = None, min_face: float | None = None) -> Recogniser:
    """A recogniser (detector, keypoint net, embedder) for the named embedder, loaded once and kept;
    `far` sets identify's share of strangers that may be named (default: the model's, 1%), `precision`
    the embedding and keypoint networks' ("int8" or "float32"; default: int8 keypoints and the embedder's
    own), `min_face` the smallest face looked for, in pixels wide (default: 24; larger is faster on big photos)."""
    return _LOADED(embedder, models, far, precision, min_face)


def open_gallery(location, create: bool = False, load_recogniser: bool = True, embedder: str | None = None,
                 precision: str | None = None, **settings) -> "Gallery":
    """A gallery with the recogniser that embeds as its faces were: `embedder` and `precision` where given
    (refused unless they are the gallery's), else its own (embedder_for); `settings` are build's others.
    Only `create` makes a new one; without `load_recogniser` an existing one loads no model until it must."""
    if create:
        name, precision = embedder_for(embedder, precision, made_by(location))
        return Gallery(location, build(name, precision=precision, **settings))
    gallery = Gallery(location, create=False)
    try:
        if load_recogniser:
            name, precision = embedder_for(embedder, precision, gallery._own())
            gallery.recogniser = build(name, precision=precision, **settings)
    except BaseException:
        gallery.close()
        raise
    return gallery


def recogniser_for(given: Recogniser | str | None = None) -> Recogniser:
    """The recogniser a verb was given: one made by build or load, an embedder's name (as load(name): loaded
    once and kept), or None for the default embedder's."""
    if given is None or isinstance(given, str):
        return load(given or DEFAULT_EMBEDDER)
    if not hasattr(given, "embedder"):  # duck-typed: a stand-in with the recogniser's parts will do
        raise KeyfaceError(f"recogniser is one made by keyface.load or keyface.build, or an embedder's name, "
                           f"not {type(given).__name__}")
    return given


class Gallery(GalleryPeople):
    """People enrolled in one gallery, a file (SQLite) or a PostgreSQL database (a `postgresql://` URI), for
    one embedder; use it in a `with` block. Opened without a recogniser, an existing gallery lists, renames
    and removes people without loading any model, and loads its own embedder on the first enrol or identify.
    A new gallery (`create`) is made by its first enrolment: until then it is empty and nothing is written.
    `loader(embedder, precision)` loads its own recogniser when it must (default: `load`, kept and shared)."""

    def __init__(self, path: str | os.PathLike, recogniser: Recogniser | str | None = None, create: bool = True,
                 *, loader: Callable[[str, str | None], Recogniser] | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise GalleryError(f"a gallery is a file's path or a postgresql:// URI, not {type(path).__name__}")
        if not os.fspath(path):
            raise GalleryError("a gallery is a file's path or a postgresql:// URI, not an empty one")
        if isinstance(path, str):  # a Path is a file's, whatever its name
            checked_address(path)
        self._location, self._store, self._head, self._making = path, None, None, threading.Lock()
        self._recogniser = None if recogniser is None else recogniser_for(recogniser)
        self._loader = loader or (lambda name, precision: load(name, precision=precision))
        self._assumed, self._closed = False, False  # _assumed: the default's recogniser, loaded before it was made
        if not create or gallery_exists(path):
            self._store = open_store(path, *_made_by(self._recogniser), create=False)

    def __repr__(self) -> str:
        return f"Gallery({str(self.path)!r}, embedder={self.embedder!r})"

    @property
    def store(self):
        """Where the people are kept (core.store, core.pg_store); a new gallery's is made now."""
        self._check_open()
        with self._making:  # threads enrolling into a new gallery at once make it once
            if self._store is None:
                self._store = open_store(self._location, *_made_by(self.recogniser), create=True)
        return self._store

    @property
    def path(self) -> Path | str:
        """The gallery file, or the database's URI without its password."""
        if self._store is not None:
            return self._store.path
        return shown_location(self._location) if is_database_uri(self._location) else Path(self._location)

    @property
    def embedder(self) -> str:
        """The name of the embedder the gallery's faces are embedded with."""
        if self._store is not None:
            return self._store.embedder
        return DEFAULT_EMBEDDER if self._recogniser is None else self._recogniser.embedder.name

    @property
    def precision(self) -> str:
        """The precision its faces are embedded in: "int8" or "float32"."""
        if self._store is not None:
            return split_version(self._store.version)[1]
        if self._recogniser is not None:
            return split_version(self._recogniser.embedder.version)[1]
        return registered(DEFAULT_EMBEDDER).precision

    def _own(self) -> dict:
        """The embedder and precision its faces are embedded in, as embedder_for takes them."""
        return {"embedder": self.embedder, "precision": self.precision}

    @property
    def recogniser(self) -> Recogniser:
        """The recogniser its faces are embedded with: given, or the gallery's own embedder's in the precision
        its faces are in, loaded now."""
        given = self._recogniser  # read once: a gallery made elsewhere may reset it from another thread
        if given is not None:
            return given
        if self._opened() is None:  # a new gallery: the default embedder's, until one made elsewhere says
            self._recogniser, self._assumed = self._loader(DEFAULT_EMBEDDER, None), True
            return self._recogniser
        found = self._loader(*embedder_for(None, None, self._own()))
        if found.embedder.version != self._store.version:
            raise OtherModelError(f"{self.path} was made with model {self._store.version} of embedder "
                                  f"{self._store.embedder!r}; {found.embedder.version} is installed: reindex it",
                                  self.path, self._store.embedder, self._store.embedder)
        self._recogniser = found
        return found

    @recogniser.setter
    def recogniser(self, given: Recogniser | str | None) -> None:
        """Embed with this recogniser (made by build or load, or an embedder's name): refused unless it has the
        gallery's own embedder and model version. None: the gallery's own again, loaded when next needed."""
        self._assumed = False
        if given is None:
            self._recogniser = None
            return
        found = recogniser_for(given)
        if self._store is not None:  # a new gallery takes the embedder of the recogniser it is given
            check_made_by(self.path, {"embedder": self._store.embedder, "version": self._store.version},
                          found.embedder.name, found.embedder.version)
        self._recogniser = found

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def enrol(self, name: str, photos, largest_face: bool = False, progress: bool = False,
              workers: int = 1) -> tuple[int, list[KeyfaceError]]:
        """Add one person's photos (one face each; `largest_face` takes a photo's largest face where it has
        several) in one transaction: (photos added, the error of each photo not added). The next chunk's
        faces are found while this chunk's are embedded; the gallery is written from this thread only."""
        from keyface.recognition.core.enrolling import ready_to_enrol
        self._check_open()  # before its photos are read, not after
        person, photos = check_name(name), _photo_list(photos)
        checked_count(workers, WORKERS)
        ready, errors, thumbnail = ready_to_enrol(self._chooser(largest_face), person, photos, workers, progress)
        added, refused = self.store_enrolments(person, ready, thumbnail)
        return added, errors + refused

    def _chooser(self, largest_face: bool) -> Recogniser:
        """The recogniser, taking a photo's largest face if asked (else following its own several-faces policy)."""
        return self.recogniser.taking("largest" if yes_or_no(largest_face, "largest_face") else
                                      self.recogniser.several_faces)

    def store_enrolments(self, person: str, ready: list[tuple[str, Enrolment]],
                         thumbnail: bytes | None) -> tuple[int, list[KeyfaceError]]:
        """Store a person's checked enrolments (each with the photo's name for messages) in one transaction,
        refusing a photo already enrolled as someone else, and their thumbnail if they have none yet:
        (added, the error of each photo refused)."""
        from keyface.recognition.core.enrolling import store_checked
        if not ready:  # nothing to store: a new gallery is not made for no one
            return 0, []
        self._head = None  # checked against the people again when next asked for
        return store_checked(self.store, person, ready, thumbnail)

    def prepare(self, name: str, photos: list, largest_face: bool = False,
                names: list[str] | None = None) -> list[Prepared]:
        """Each photo's enrolment record or its error, found and embedded but not stored (a server does this
        work away from the gallery's thread, then calls store_enrolments); `names`: what errors call each photo."""
        self._check_open()
        return self._chooser(largest_face).enrolments(check_name(name), _photo_list(photos), names=names)

    def identify(self, image, top: int = 3, index=None, head: bool = False,
                 min_probability: float = MIN_PROBABILITY) -> list[Face]:
        """Every face in a photo, left to right, with its `top` nearest people, named when the nearest is
        within the open-set cut (else unknown: None). `index` is a search index made by search_index()
        (kept by a server), or the kind of one to make ("exact", the default, "faiss" or "hnsw"); `head`
        names faces by the gallery's softmax head instead (`train_head`), unknown under `min_probability`."""
        _identify_settings(top, head, min_probability)
        faces = self.recogniser.identify(self._index(index), image, top, by_distance=not head)
        if not head:
            return faces
        from keyface.recognition.core.head import named_by_head
        return named_by_head(self.softmax_head(), faces, min_probability)

    def identify_all(self, photos, top: int = 3, index=None, head: bool = False,
                     min_probability: float = MIN_PROBABILITY, workers: int = 1):
        """identify() for many photos, `workers` of them at once (threads), yielded in the order given as
        (photo, faces), or (photo, KeyfaceError) for a photo that cannot be identified; the rest go on."""
        photos = one_or_many(photos)
        _identify_settings(top, head, min_probability)  # before any photo: one error for the call, not one a photo
        checked_count(workers, WORKERS)
        index = self._index(index)  # an empty gallery: refused before any model loads
        if head:
            self.softmax_head()  # loaded once, here; its network runs one photo at a time
            return in_order(lambda photo: self.identify(photo, top, index, head, min_probability), photos)
        # the recogniser (the gallery's own embedder loaded here, once, before any thread) called by the photo
        # loop itself: the way runs down, never back up into this file
        return in_order(functools.partial(self.recogniser.identify, index, k=top), photos, workers)

    def identify_video(self, video, top: int = 3, on_frame=None, index=None, sampling=None):
        """Every track of faces in a video, named by a vote of its best sightings, yielded as it closes: a video
        file's path or a camera's index, its frames as `sampling` (data.video.Sampling) says (default: 15 a
        second), or a data.video.Video already open; `on_frame(frame, [(track id, box, name so far)])` is
        called on each frame looked at."""
        from keyface.recognition.core.video import VideoRun, video_source_tracks
        if isinstance(video, PIXELS):
            raise KeyfaceError("identify_video takes a video file's path or a camera index, not an image")
        checked_count(top, TOP)
        run = VideoRun(self.recogniser, self._index(index), top, on_frame)
        return video_source_tracks(video, run, sampling)

    def enrol_video(self, name: str, source, count: int = 5, largest_face: bool = False,
                    sampling=None) -> tuple[int, list[KeyfaceError]]:
        """Enrol the one person in a video: the `count` best distinct sightings of their track (the largest
        face's with `largest_face`; otherwise a video of several people is refused)."""
        from keyface.recognition.core.video_enrol import enrolments_from_video
        self._check_open()
        person = check_name(name)
        ready, thumbnail = enrolments_from_video(self._chooser(largest_face), person, source, count, sampling)
        return self.store_enrolments(person, ready, thumbnail)

    def _index(self, given):
        """The search index given (a server keeps one), else one of the kind named (default: the gallery's
        exact one)."""
        return given if given is not None and not isinstance(given, str) else self.search_index(given)

    def search_index(self, kind: str | None = None):
        """A search index of the stored embeddings: for a file "exact" (the default) or "faiss", rebuilt only
        after a change; for PostgreSQL, pgvector's "hnsw" (the default) or "exact", in the database. Refused
        (EmptyGalleryError) when no one is enrolled: there is no one to name a face as."""
        return self._filled().index(kind)

    def _filled(self):
        """The store, refused (EmptyGalleryError) when no one is enrolled, and never made for that."""
        if self.is_empty():
            raise EmptyGalleryError(f"gallery {self.path} is empty: enrol people first", self.path)
        return self._store

    def identify_threshold(self, head: bool = False) -> float | None:
        """The distance beyond which identify calls a face unknown (None when a softmax head names them)."""
        return None if head else self.recogniser.identify_threshold

    def head_path(self) -> Path:
        """Where the gallery's softmax head lives: beside the gallery file."""
        if not isinstance(self.path, Path):
            raise KeyfaceError("a softmax head is kept beside a gallery file; a PostgreSQL gallery has none")
        return self.path.with_name(self.path.name + ".head.keras")

    def train_head(self, epochs: int = 200) -> Path:
        """Fit a softmax over the gallery's people on their stored embeddings, saved beside the gallery."""
        from keyface.recognition.core.head import train_head
        return train_head(self._filled(), self.head_path(), epochs)

    def softmax_head(self):
        """The softmax head trained on this gallery (train_head), loaded once; an error if there is none."""
        from keyface.recognition.core.head import gallery_head
        if self._head is None:
            self._head = gallery_head(self.head_path(), self.path, self._opened())
        return self._head

    @property
    def exists(self) -> bool:
        """Whether the gallery is made: a new one is made by its first enrolment."""
        return self._store is not None or gallery_exists(self._location)

    def is_empty(self) -> bool:
        """Whether no one is enrolled (cheap at any size, unlike people())."""
        store = self._opened()
        return store is None or store.is_empty()

    def _opened(self):
        """The store, or None while the gallery is not made; one made since (by another process, say, while a
        server waits on a new gallery) is opened now."""
        self._check_open()
        if self._store is None and gallery_exists(self._location):
            with self._making:
                if self._store is None:  # a recogniser only assumed gives way to the gallery's own
                    given = None if self._assumed else self._recogniser
                    self._store = open_store(self._location, *_made_by(given), create=False)
                    if given is None and self._recogniser is not None and _made_by(self._recogniser)[:2] != (
                            self._store.embedder, self._store.version):
                        self._recogniser, self._assumed = None, False  # its own is loaded when next needed
        return self._store

    def close(self) -> None:
        """Close the gallery file."""
        self._closed = True
        if self._store is not None:
            self._store.close()

    def _check_open(self) -> None:
        """Refuse (GalleryError) once close() was called: a closed gallery is neither read nor made."""
        if self._closed:
            raise GalleryError(f"the gallery {self.path} is closed: open it again")


def open_store(location, embedder: str, version: str, dim: int, create: bool = True):
    """The store a gallery location names: a PostgreSQL database for a `postgresql://` URI, else a file."""
    if is_database_uri(location):
        from keyface.recognition.core.pg_store import PostgresStore
        return PostgresStore(str(location), embedder, version, dim, create=create)
    return SQLiteStore(Path(location), embedder, version, dim, create=create)


def _made_by(recogniser: Recogniser | None) -> tuple:
    """The embedder, model version and dimension a recogniser's gallery holds (all None: the gallery's own)."""
    if recogniser is None:
        return None, None, None
    return recogniser.embedder.name, recogniser.embedder.version, recogniser.embedder.dim


def one_or_many(photos) -> list | Iterable:
    """Photos given one (a path or an array) or many (any iterable, taken as it comes)."""
    if isinstance(photos, (str, os.PathLike, *PIXELS)):
        return [photos]
    if not hasattr(photos, "__iter__"):
        raise KeyfaceError(f"photos are a path, an image array or a list of them, not {type(photos).__name__}")
    return photos


def checked_count(value, what: str, least: int = 1) -> int:
    """A count the caller gave (top, workers, max_num): a whole number, `least` or more; `what` says what it counts."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise KeyfaceError(f"{what}, {least} or more, not {value!r}")
    return int(value)


def yes_or_no(value, name: str) -> bool:
    """A yes/no a caller gave (largest_face, head): True or False, not a string or a number that Python would
    take for one ("no" is true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise KeyfaceError(f"{name} is True or False, not {value!r}")
    return bool(value)


def probability(value, name: str) -> float:
    """A probability a caller gave: a number from 0 to 1 (not a string or a bool, which float() would take)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 1:
        raise KeyfaceError(f"{name} is a probability, from 0 to 1, not {value!r}")
    return float(value)


def _identify_settings(top, head, min_probability) -> None:
    """Refuse identify's settings, whichever of them this call uses, before any photo is read."""
    checked_count(top, TOP)
    yes_or_no(head, "head")
    probability(min_probability, "min_probability")


TOP = "top is how many nearest people to list"
WORKERS = "workers is how many photos to work on at once"


def _photo_list(photos) -> list:
    """Photos given one or many, as a list; a folder given as the photos is refused by name (enrol takes
    photos). A folder among the photos is that photo's error, as any other unreadable photo's."""
    if isinstance(photos, (str, os.PathLike)) and os.fspath(photos).strip() and Path(photos).is_dir():
        raise KeyfaceError(f"{shown(photos)} is a folder: enrol takes a list of photos; list its images")
    return list(one_or_many(photos))
