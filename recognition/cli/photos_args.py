"""Photo arguments checked and folders expanded before any model loads (so before TensorFlow is imported):
a mistake costs a fraction of a second, not the seconds a model takes to load."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # http://, https://, ftp://, s3://, file:// ...


class ArgumentError(Exception):
    """A photo argument that cannot be used: main prints it as `keyface: error: ...` and exits 2."""


def _shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_file(text: str) -> str:
    """A photo file argument as given, once it is known to exist and be readable."""
    if URL.match(text):
        raise ArgumentError(f"{text}: keyface does not download; save the photo first")
    path = Path(text)
    if not path.exists():
        raise ArgumentError(f"{_shown(text)}: no such file or folder")
    if path.is_dir():
        raise ArgumentError(f"{_shown(text)} is a folder: give a photo file")
    if not path.is_file():
        raise ArgumentError(f"{_shown(text)}: not a regular file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ArgumentError(f"{_shown(text)}: cannot read ({exc.strerror})") from None
    return text


def folder_photos(folder: Path) -> tuple[list[str], int]:
    """Every file under folder that Pillow can open, recursively, in sorted order; and how many other
    files were skipped. Dot-files and dot-folders (.git, .DS_Store) are never photos."""
    from keyface.data.images import is_image_file
    photos, skipped = [], 0
    for root, dirs, files in os.walk(folder, onerror=_walk_error):  # links to folders are not followed: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue
            if path.is_file() and os.access(path, os.R_OK) and is_image_file(path):
                photos.append(str(path))
            else:
                skipped += 1
    return sorted(photos, key=lambda p: Path(p).parts), skipped


def _walk_error(exc: OSError) -> None:
    raise ArgumentError(f"{_shown(exc.filename)}: cannot read the folder ({exc.strerror})")


def expand(args: list[str], note=None) -> list[str]:
    """Photo arguments with every folder replaced by the photos in it; one ArgumentError for the first
    bad one. `note(text)` hears of files skipped in folders (default: a line on stderr)."""
    note = note or (lambda text: print(f"keyface: {text}", file=sys.stderr))
    photos = []
    for text in args:
        if not URL.match(text) and Path(text).is_dir():
            found, skipped = folder_photos(Path(text))
            if not found:
                raise ArgumentError(f"{_shown(text)}: no images in this folder"
                                    + (f" ({skipped} other file(s))" if skipped else ""))
            if skipped:
                note(f"{_shown(text)}: {len(found)} photo(s); {skipped} file(s) skipped (not images Pillow can open)")
            photos.extend(found)
        else:
            photos.append(check_file(text))
    return photos


def prepare(args) -> None:
    """Check (and expand, in place) the photo arguments of whichever command was parsed."""
    if isinstance(getattr(args, "photos", None), list):  # PHOTO... arguments (a count of photos is not)
        args.photos = expand(args.photos)
    for name in ("photo_a", "photo_b"):  # verify: exactly two files
        if getattr(args, name, None) is not None:
            check_file(getattr(args, name))
    folders = getattr(args, "folders", None)
    if isinstance(folders, str) and folders:  # enroll --folders
        if URL.match(folders):
            raise ArgumentError(f"{folders}: keyface does not download; save the photos first")
        if not Path(folders).is_dir():
            raise ArgumentError(f"--folders {_shown(folders)}: no such folder")
