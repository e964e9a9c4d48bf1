"""Errors that reach the user as one line (the CLI prints them without a traceback), in one hierarchy
under `KeyfaceError`. Each kind says once how the entry points answer it: `exit_code` for the command
line, `http_status` for `keyface serve`; the command line's hints (its flags) are its own
(`recognition/cli/hints.py`), chosen by the same kinds, never by a message's text. `finite_number` is the one
check of a number a caller gives, `distance_cut` of a distance threshold."""
from __future__ import annotations

import math
from pathlib import Path


class KeyfaceError(Exception):
    """An error caused by the user's input or environment, shown as a one-line message."""
    exit_code = 2
    http_status = 400


class DataError(KeyfaceError):
    """A data file or folder is missing, unreadable or malformed; the message names it."""


class ImageError(KeyfaceError):
    """A photo cannot be used: not an image, truncated, too small, too large, unsupported mode."""


class VideoError(ImageError):
    """A video or camera cannot be read: no such file, no video stream, truncated, frames of an unusable size."""


class MissingDependency(KeyfaceError, ImportError):
    """An optional package is not installed; the message gives the pip line."""


class NoDataRootError(DataError):
    """No data root was named (neither a flag nor KEYFACE_DATA)."""


class NoFaceError(KeyfaceError):
    """No face was found in a photo that needed one."""


class SeveralFacesError(KeyfaceError):
    """A photo holds several faces where one was asked for (enrol, verify): which one is meant is ambiguous."""


class NotCalibratedError(KeyfaceError):
    """A model file carries no calibrated threshold of the kind asked for; `embedder` names the model."""

    def __init__(self, message: str, embedder: str):
        super().__init__(message)
        self.embedder = embedder


class FalseAcceptRateError(KeyfaceError):
    """A false-accept rate that is out of range or finer than the model's calibration can resolve."""


class LandmarksNeededError(KeyfaceError):
    """An alignment needs the detector's own landmarks, and the detector gives none."""


class GalleryError(KeyfaceError):
    """The gallery cannot do what was asked (wrong embedder, unknown person, bad name)."""


class EmptyGalleryError(GalleryError):
    """No one is enrolled in the gallery (`path`, where it is known), so there is no one to name a face as."""

    def __init__(self, message: str, path: Path | str | None = None):
        super().__init__(message)
        self.path = path


class PersonNotFoundError(GalleryError):
    """No one of that name (or no thumbnail of them) is in the gallery."""
    http_status = 404


class GalleryConflictError(GalleryError):
    """The change would make one photo two people's, or two people one name."""
    http_status = 409


class SourcePhotoMissingError(GalleryError):
    """A photo enrolled in a gallery is gone from where it was enrolled from, or changed: it cannot be re-embedded."""


class OtherModelError(GalleryError):
    """The gallery holds another embedder's or model version's vectors: `path`, `made` (its embedder) and
    `wanted` (the one asked for); `precision` is the one it was embedded in where only that differs."""
    http_status = 409  # in conflict with the gallery: a server asked for another model than the gallery's

    def __init__(self, message: str, path: Path, made: str, wanted: str, precision: str | None = None):
        super().__init__(message)
        self.path, self.made, self.wanted, self.precision = path, made, wanted, precision


class DamagedGalleryError(GalleryError):
    """The gallery file, or vectors in it, are damaged: `path`, and `repair`: "check" (the file) or
    "reindex" (vectors, re-embedded from their photos)."""

    def __init__(self, message: str, path: Path, repair: str):
        super().__init__(message)
        self.path, self.repair = path, repair


class NoSoftmaxHeadError(GalleryError):
    """The gallery has no softmax head trained on it (`path`: the gallery)."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


class GalleryUnavailableError(GalleryError):
    """The gallery's database server cannot be reached now (stopped, restarting, network): try again later."""
    exit_code = 3
    http_status = 503


def distance_cut(value, name: str) -> float:
    """A distance cut a caller gave (a threshold, a tolerance): a finite number, 0 or more (below 0, not even a
    photo and itself would match)."""
    cut = finite_number(value, name)
    if cut < 0:
        raise KeyfaceError(f"{name} is a distance, 0 or more, not {value!r}")
    return cut


def false_accept_rate(value) -> float:
    """A share of strangers that may be named (`far`), strictly between 0 and 1."""
    far = _as_number(value)
    if not 0.0 < far < 1.0:
        raise FalseAcceptRateError(f"the false-accept rate must be between 0 and 1 (exclusive), not {value!r}")
    return far


def finite_number(value, name: str) -> float:
    """A number a caller gave (a distance, a score, a rate, a time) as a float; a KeyfaceError naming it if it is
    not a finite number (a bool or a string is not one)."""
    number = _as_number(value)
    if not math.isfinite(number):
        raise KeyfaceError(f"{name} must be a finite number, not {value!r}")
    return number


def _as_number(value) -> float:
    """A caller's number as a float; NaN for anything that is not one (a bool or a string is not, though float()
    takes them), which every range check refuses."""
    if isinstance(value, (bool, str)):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
