"""The command-line way to act on a library error: library errors speak in library terms (no flags), and
the command line adds the flag or command that does it, chosen by the error's kind."""
from __future__ import annotations

import shlex

from keyface.data.errors import (DamagedGalleryError, EmptyGalleryError, FalseAcceptRateError, KeyfaceError,
                                 LandmarksNeededError, NoDataRootError, NoSoftmaxHeadError, NotCalibratedError,
                                 OtherModelError, SeveralFacesError, SourcePhotoMissingError)


def hint(error: KeyfaceError) -> str | None:
    """The command-line way to act on a library error (library errors speak in library terms), by its kind."""
    if isinstance(error, NotCalibratedError):
        return f"run `keyface calibrate {error.embedder}`, or pass --threshold"
    if isinstance(error, OtherModelError) and error.precision:
        return (f"use --precision {error.precision}, or run `keyface reindex {_gallery(error.path)} --precision "
                f"{'int8' if error.precision == 'float32' else 'float32'}`")
    if isinstance(error, OtherModelError) and error.made == error.wanted:  # another version: only a reindex mends it
        return f"run `keyface reindex {_gallery(error.path)}`"
    if isinstance(error, OtherModelError):
        return f"use --embedder {error.made}, or run `keyface reindex {_gallery(error.path)} --embedder {error.wanted}`"
    if isinstance(error, DamagedGalleryError):
        return f"run `keyface {error.repair} {_gallery(error.path)}`"
    if isinstance(error, EmptyGalleryError):
        where = f" {_gallery(error.path)}" if error.path is not None else ""
        return f"run `keyface enroll{where} --name NAME PHOTO...`"
    if isinstance(error, NoSoftmaxHeadError):
        return f"run `keyface train-head {_gallery(error.path)}`"
    flags = {SeveralFacesError: "--largest-face", FalseAcceptRateError: "--far", NoDataRootError: "--data PATH",
             LandmarksNeededError: "--detector mtcnn", SourcePhotoMissingError: "--skip-missing leaves them out"}
    return next((flag for kind, flag in flags.items() if isinstance(error, kind)), None)


def _gallery(location) -> str:
    """The --gallery flag for a gallery named in an error, quoted for a shell: a database URI is shown with its
    password hidden (***), so the command to copy says where the password goes."""
    return "--gallery " + shlex.quote(str(location).replace(":***@", ":PASSWORD@").replace("password=***",
                                                                                           "password=PASSWORD"))


def with_hint(error: KeyfaceError | str) -> str:
    """An error's one line, with the command-line way to act on it where there is one."""
    found = hint(error) if isinstance(error, KeyfaceError) else None
    return f"{error} ({found})" if found else str(error)
