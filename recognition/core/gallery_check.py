"""Gallery maintenance that cannot lose data: a full check, consistent copies, and whole-file rewrites
through SQLite itself (never by renaming a database that has a write-ahead log beside it); and a gallery
file read without opening it (its meta, its photos, what made it), which claims nothing and waits for no lock."""
from __future__ import annotations

import itertools
import logging
import os
import sqlite3
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.errors import DamagedGalleryError, EmptyGalleryError, GalleryError
from keyface.data.paths import is_database_uri
from keyface.recognition.core.damage import damaged, foreign, sqlite_problems, unreadable
from keyface.recognition.core.store import GalleryLock, owner_only, vector_ok
from keyface.runtime.networks import split_version

log = logging.getLogger(__name__)

TABLES = ("meta", "people", "photos", "embeddings")


def check_gallery(path: Path, vectors: bool = True) -> list[str]:
    """Every problem found: SQLite's integrity check, keyface's tables and meta, and (with `vectors`) each stored
    vector (right size, finite, unit length). An empty list means the gallery is sound."""
    if not Path(path).is_file():
        raise EmptyGalleryError(f"gallery not found: {path}: enrol people first", path)
    if Path(path).stat().st_size == 0:  # what an enrolment makes a gallery in, not a damaged one
        raise EmptyGalleryError(f"{path} holds no keyface gallery yet: enrol people first", path)
    try:
        conn = connect_read_only(Path(path))
    except sqlite3.DatabaseError as exc:
        return _damage_or_refusal(path, exc)
    try:
        return _problems(conn, path, vectors)
    except sqlite3.DatabaseError as exc:
        return _damage_or_refusal(path, exc)
    finally:
        conn.close()


def _damage_or_refusal(path: Path, exc: sqlite3.DatabaseError) -> list[str]:
    """SQLite's error as the check's one problem where the gallery is damaged; refused (GalleryError) where
    the file is no gallery at all or cannot be read now, as every other command refuses it."""
    refusal = unreadable(path, exc)
    if isinstance(refusal, DamagedGalleryError):
        return [f"SQLite: {exc}"]
    raise refusal


def _problems(conn: sqlite3.Connection, path: Path, vectors: bool = True) -> list[str]:
    problems = sqlite_problems([r[0] for r in conn.execute("PRAGMA integrity_check(20)") if r[0] != "ok"])
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [t for t in TABLES if t not in names]
    if len(missing) == len(TABLES) and not problems:  # another program's database: no gallery, not a damaged one
        raise foreign(path)
    if missing:
        return problems + [f"not a keyface gallery: no table {', '.join(missing)}"]
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if not {"embedder", "version", "dim"} <= set(meta):
        return problems + ["the meta table lacks the embedder, its version or the dimension"]
    dim = int(meta["dim"])
    bad = _damaged_vectors(conn, dim) if vectors else 0
    if bad:
        problems.append(f"{bad} stored embedding(s) are not finite unit vectors of dimension {dim}")
    return problems


def _damaged_vectors(conn: sqlite3.Connection, dim: int) -> int:
    """How many stored vectors are not finite unit vectors of the gallery's dimension."""
    bad = 0
    for (blob,) in conn.execute("SELECT vector FROM embeddings"):
        ok = isinstance(blob, bytes) and len(blob) == 4 * dim
        bad += not (ok and vector_ok(np.frombuffer(blob, np.float32)[None])[0])
    return bad


def snapshot(path: Path, dest: Path, vectors: bool = True) -> Path:
    """A complete, checked copy of the gallery (its WAL included) at dest, made by `VACUUM INTO` into a
    temporary file and renamed into place only once whole; without `vectors`, its stored vectors go unchecked
    (the backup of a gallery whose damaged vectors a reindex replaces keeps them as they were)."""
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("VACUUM INTO ?", (str(tmp),))
    finally:
        conn.close()
    owner_only(tmp)
    problems = check_gallery(tmp, vectors)
    if problems:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"the copy of {path} failed its check ({problems[0]}); nothing was changed")
    tmp.replace(dest)  # a plain file without a WAL: renaming it is safe
    return dest


def overwrite_with(source: Path, live: Path) -> None:
    """Replace the live gallery's contents with source's in one SQLite transaction (the backup API):
    readers see the old gallery or the new one, and a crash leaves the old one."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(live, timeout=30)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    owner_only(live)


def remove_database(path: Path) -> None:
    """Delete a scratch database and every file SQLite or keyface keeps beside it."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal"), Path(f"{path}.lock")):
        p.unlink(missing_ok=True)


def _backup_made_room(backup: Path) -> Path:
    """`backup`, free: earlier backups move one number up, as logs rotate (`<backup>.1` the one before the newest,
    the highest number the oldest); none is removed."""
    def numbered(n: int) -> Path:
        return backup.with_name(f"{backup.name}.{n}")
    if backup.exists():
        taken = next(n for n in itertools.count(1) if not numbered(n).exists()) - 1  # .1 ... .taken are there
        for n in range(taken, 0, -1):  # the oldest first, so that no rename lands on a backup still there
            numbered(n).rename(numbered(n + 1))
        backup.rename(numbered(1))
        log.info("the earlier backup %s is kept as %s", backup, numbered(1).name)
    return backup


def rewrite(path: Path, build: Callable[[Path, Path], object], replaces_vectors: bool = False):
    """Rewrite a gallery without risking it: take it exclusively (refused while any other process has
    it open), check it, let `build(path, scratch)` write the new gallery into a scratch file, check that,
    keep a complete copy of the old as `<gallery>.bak` (earlier ones as `.bak.1`, `.bak.2`..., oldest last) and copy
    the new into place in one SQLite transaction. A crash at any point leaves the old gallery, or the new
    one with the backup; a failed build leaves no backup. A build that `replaces_vectors` (a reindex, which
    embeds every photo anew) goes ahead over damaged stored vectors, the damage it mends. Returns build's result."""
    path = Path(path)
    lock = GalleryLock(path, exclusive=True)
    try:
        problems = check_gallery(path, vectors=not replaces_vectors)
        if problems:
            raise DamagedGalleryError(damaged(path, problems[0]), path, "check")
        scratch = path.with_name(path.name + ".rewrite")
        remove_database(scratch)  # what a killed rewrite left
        try:
            result = build(path, scratch)
            problems = check_gallery(scratch)
            if problems:
                raise GalleryError(f"the rewritten gallery failed its check ({problems[0]}); {path} is unchanged")
            # backed up only now that there is a new gallery to put in its place (held throughout: it is unchanged)
            snapshot(path, _backup_made_room(path.with_name(path.name + ".bak")), vectors=not replaces_vectors)
            overwrite_with(scratch, path)
        finally:  # a refused or failed build's half-written file too: only a killed rewrite leaves one
            remove_database(scratch)
        return result
    finally:
        lock.release()


def read_photos(path: Path) -> list[tuple[str, str, str]]:
    """(person, sha256, source) of every photo in a gallery file, whatever embedder made it."""
    if not Path(path).is_file():
        raise GalleryError(f"gallery not found: {path}")
    conn = connect_read_only(Path(path))
    try:
        rows = conn.execute("SELECT p.name, ph.sha256, ph.source FROM photos ph "
                            "JOIN people p ON p.id = ph.person_id ORDER BY ph.id").fetchall()
        return [(name, sha, os.fsdecode(src) if isinstance(src, bytes) else src) for name, sha, src in rows]
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from None
    finally:
        conn.close()


def read_meta(path: Path) -> dict:
    """A gallery's embedder, model version and dimension, read without claiming the file."""
    if not Path(path).is_file():
        raise EmptyGalleryError(f"gallery not found: {path}: enrol people first", path)
    conn = connect_read_only(Path(path))
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from None
    finally:
        conn.close()


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never creates the file and changes no data (any characters in the path). It is opened
    read-write where the file allows, because only such a connection, closing last, takes away the -wal and
    -shm files SQLite makes beside a gallery (moving any committed changes left in the -wal into the file first,
    as every keyface command does): a read-only one leaves them behind."""
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=rw", uri=True, timeout=30)


def made_by(location) -> dict:
    """The embedder, model version, precision and dimension an existing gallery was made with ({} if there is
    none)."""
    if is_database_uri(location):
        from keyface.recognition.core import pg_store
        meta = pg_store.read_meta(str(location))
    else:  # an empty file is made into a gallery as a missing one is
        meta = read_meta(location) if Path(location).is_file() and Path(location).stat().st_size else {}
    return {**meta, "precision": split_version(meta["version"])[1]} if "version" in meta else meta


def gallery_exists(location) -> bool:
    """Whether a gallery is there to open: a database that holds any table, or a file (or folder) that is not
    empty; anything there that is not a gallery is refused when opened."""
    if is_database_uri(location):
        from keyface.recognition.core.pg_store import holds_tables
        return holds_tables(str(location))
    return Path(location).is_dir() or (Path(location).is_file() and Path(location).stat().st_size > 0)
