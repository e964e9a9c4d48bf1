"""Errors that reach the user as one line (the CLI prints them without a traceback)."""


class KeyfaceError(Exception):
    """An error caused by the user's input or environment, shown as a one-line message."""


class DataError(KeyfaceError):
    """A data file or folder is missing, unreadable or malformed; the message names it."""


class ImageError(KeyfaceError):
    """A photo cannot be used: not an image, truncated, too small, too large, unsupported mode."""


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
