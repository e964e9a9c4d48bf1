"""Files keyface writes for a person to look at (face crops, annotated photos, reports): created new,
readable by their owner only (they show people's faces), and never over anything already there; and the
caches it rewrites whole, never seen half written."""
from __future__ import annotations

import glob
import io
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.errors import KeyfaceError

log = logging.getLogger(__name__)

STALE_TEMPORARY_S = 3600.0  # no cache takes an hour to write: a temporary file that old was left by a killed run


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a web address given as a photo: http://, s3://, file:// ...


def shown(path) -> str:
    """A path printable in any terminal or page (bytes that are not UTF-8 as \\x escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def create_private(path: str | os.PathLike, data: bytes) -> Path:
    """Write data to a new owner-only file; refuse (one line) if anything is at that path already."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyfaceError(f"{shown(path)} already exists: "
                           "keyface does not overwrite it; choose another output folder") from None
    except OSError as exc:
        raise KeyfaceError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def private_dir(path: str | os.PathLike) -> Path:
    """A folder that may already exist (as a folder), made owner-only if keyface creates it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KeyfaceError(f"{path} exists and is not a folder")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyfaceError(f"cannot make the folder {path}: {exc.strerror}") from None
    return path


def free_name(path: str | os.PathLike) -> Path:
    """path, or path with -2, -3, ... before its suffix: the first name nothing is at yet."""
    path, n = Path(path), 2
    candidate = path
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB uint8 image encoded as JPEG."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def install_copy(made: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a made file (a trained model) to where the commands look for it, written whole; a file already there
    is replaced, and that is said (a model keyface trained also stays in its run folder)."""
    target = Path(target)
    if target.exists():
        log.warning("replacing the earlier %s with %s (a model keyface trained also stays in its run folder)",
                    target, made)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_whole(target, lambda tmp: tmp.write_bytes(Path(made).read_bytes()))
    return target


def write_whole(path: str | os.PathLike, write: Callable[[Path], object], suffix: str = ".tmp",
                mode: int = 0o600) -> None:
    """Make path by write(temporary path) and a rename over it: a killed run leaves no half file, and
    processes that write the same file at once (two commands filling one cache) each use a temporary
    file of their own, so the last one to finish wins instead of one of them failing. The file is
    owner-only, like everything keyface writes about faces, unless `mode` says otherwise (model files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path, suffix)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(name))
        os.chmod(name, mode)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """The temporary files of path that writers killed over STALE_TEMPORARY_S ago left behind (a face
    set's can be hundreds of MB)."""
    cutoff = time.time() - STALE_TEMPORARY_S
    for old in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:  # another writer renamed or removed it first
            pass
