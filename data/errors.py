"""Errors that reach the user as one line (the CLI prints them without a traceback)."""


class KeyfaceError(Exception):
    """An error caused by the user's input or environment, shown as a one-line message."""


class DataError(KeyfaceError):
    """A data file or folder is missing, unreadable or malformed; the message names it."""


class ImageError(KeyfaceError):
    """A photo cannot be used: not an image, truncated, too small, too large, unsupported mode."""


class MissingDependency(KeyfaceError, ImportError):
    """An optional package is not installed; the message gives the pip line."""
