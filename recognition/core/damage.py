"""How a damaged gallery file is said: SQLite's findings without its headings, and the one-line refusal that
names the repair (a file SQLite cannot read at all is damaged if it is an SQLite file, else no gallery)."""
from __future__ import annotations

import os
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


def foreign(path: Path) -> GalleryError:
    """The refusal of another program's SQLite database: no gallery, and not a damaged one."""
    return GalleryError(f"{path} is an SQLite file but not a keyface gallery; refusing to touch it")


# SQLite's primary result codes that say nothing of the file's contents: no permission, busy, locked, read-only,
# an I/O error, cannot open. The file may well be a sound gallery.
SQLITE_ACCESS = {3: "no permission", 5: "busy", 6: "locked", 8: "read-only", 10: "I/O error", 14: "cannot open"}
SQLITE_CORRUPT = 11
SQLITE_WRITE = {8, 14}  # read-only, cannot open: where a read-only folder (no room for the journal) is the cause


def unreadable(path: Path, exc: sqlite3.DatabaseError) -> GalleryError:
    """The refusal of a file SQLite cannot read: one it cannot get at (locked, no permission) is said as that,
    since it may well be sound; an SQLite file it finds corrupt (cut short, or its first pages damaged) is a
    damaged gallery, named with its repair; anything else (another program's database, not SQLite) is not a
    keyface gallery."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in SQLITE_ACCESS:
        folder = Path(path).parent
        beside = "" if code not in SQLITE_WRITE or os.access(folder, os.W_OK) else \
            f": SQLite writes its journal in {folder}, which is read-only here"
        return GalleryError(f"cannot read the gallery {path} ({exc}){beside}")
    try:
        with open(path, "rb") as file:
            sqlite = file.read(16) == b"SQLite format 3\x00"
    except OSError:
        sqlite = False
    if sqlite and code == SQLITE_CORRUPT:
        return DamagedGalleryError(damaged(path, str(exc)), path, "check")
    return GalleryError(f"{path} is not a keyface gallery ({exc})")
