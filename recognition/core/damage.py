"""How a damaged gallery file is said: SQLite's findings without its headings, and the one-line refusal that
names the repair (a file SQLite cannot read at all is damaged if it is an SQLite file, else no gallery)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from keyface.data.errors import DamagedGalleryError, GalleryError


def sqlite_problems(lines: list[str]) -> list[str]:
    """SQLite's check lines without its "*** in database main ***" headings, which name no problem (a heading
    opens the first problem's line, or is a line of its own)."""
    said = [line.split("\n", 1)[-1] if line.startswith("*** in database ") else line for line in lines]
    return [line for line in said if not line.startswith("*** in database ")] or lines


def damaged(path: Path, detail: str) -> str:
    """The one-line refusal for a damaged gallery, naming the repair."""
    backup = Path(f"{path}.bak")
    fix = f"restore {backup} (the copy kept by the last reindex)" if backup.is_file() else "restore it from a backup"
    return f"{path} is damaged ({detail.splitlines()[0][:120]}); nothing was written: {fix}, or check " \
           "the gallery for details"


SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # SQLite's primary result codes for a damaged file and a foreign one


def unreadable(path: Path, exc: sqlite3.DatabaseError) -> GalleryError:
    """The refusal of a file SQLite cannot read: an SQLite file it finds corrupt (cut short, or its first pages
    damaged) is a damaged gallery, named with its repair; a file that is not SQLite is not a gallery at all; a
    file it cannot read for another reason (locked, no permission) is said as that, since it may well be sound."""
    if (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF not in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return GalleryError(f"cannot read the gallery {path} ({exc})")
    try:
        with open(path, "rb") as file:
            sqlite = file.read(16) == b"SQLite format 3\x00"
    except OSError:
        sqlite = False
    if sqlite:
        return DamagedGalleryError(damaged(path, str(exc)), path, "check")
    return GalleryError(f"{path} is not a keyface gallery ({exc})")
