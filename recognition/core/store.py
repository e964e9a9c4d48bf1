"""Where a gallery keeps its people: one SQLite file of people, photos and embeddings (every write one
transaction), locked against a rewrite while open. `recognition.facade.Gallery` is the gallery users and the
entry points see; this is its storage."""
from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import numpy as np

from keyface.data.errors import DamagedGalleryError, EmptyGalleryError, GalleryError, OtherModelError
from keyface.recognition.core.damage import damaged, foreign, sqlite_problems, unreadable
from keyface.recognition.core.records import SCHEMA_VERSION, SQLITE_SCHEMA
from keyface.recognition.core.search import ExactIndex, RowIndex, VectorFile
from keyface.recognition.core.store_changes import GalleryChanges
from keyface.runtime.networks import split_version

log = logging.getLogger(__name__)

# Galleries with at least this many embeddings are searched from a memory-mapped copy beside them
# (core.search.VectorFile), not read out of SQLite on every identify.
VECTOR_FILE_ROWS = 20_000
# A gallery file this large is quick-checked once after each change, not on every open (noted beside it).
CHECK_ONCE_BYTES = 64 << 20
LOCK_WAIT = 30.0  # seconds a command waits for a gallery that a maintenance job holds


def one_call_at_a_time(method):
    """A store method run holding the store's lock: every thread shares its one SQLite connection, and a
    transaction must never take in another thread's writes."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._using:
            return method(self, *args, **kwargs)
    return locked


class SQLiteStore(GalleryChanges):
    """People, their photos and embeddings for one embedder (name + model version) in SQLite; one store
    may be used from any thread, one call at a time. What changes its people is core.store_changes'."""

    def __init__(self, path: str | os.PathLike, embedder: str | None, version: str | None, dim: int | None,
                 create: bool = True):
        """Open (or, with create, make) a gallery; a damaged one is refused before anything is written. With
        no embedder an existing gallery is opened with its own (name, version and dimension)."""
        if not str(path):
            raise GalleryError("the gallery path is empty")
        self.path = Path(path)
        self.embedder, self.version, self.dim = embedder, version, dim
        self._cache = None  # (data version and kind, the search index made then)
        self._using = threading.RLock()
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder, not a gallery file")
        if not create and not self.path.is_file():
            raise EmptyGalleryError(f"gallery not found: {self.path}: enrol people first", self.path)
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                why = "a file is there" if self.path.parent.is_file() or any(
                    p.is_file() for p in self.path.parent.parents) else exc.strerror
                raise GalleryError(f"cannot make the gallery folder {self.path.parent}: {why}") from None
        self.lock = GalleryLock(self.path, exclusive=False)
        try:
            self._open()
        except BaseException:
            # let go now: the exception (and this half-made object in its traceback) may live on for a while,
            # and a lock held until then keeps a rewrite of the gallery out
            self.close()
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        """The open database; a gallery used after close() says so."""
        if getattr(self, "_conn", None) is None:
            raise GalleryError(f"the gallery {self.path} is closed: open it again")
        return self._conn

    def _open(self) -> None:
        """Connect, check the file is an undamaged keyface gallery, and claim or check its embedder."""
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh and self.embedder is None:  # nothing to open with its own embedder: never made into a gallery
            raise EmptyGalleryError(f"{self.path} holds no keyface gallery yet: enrol people first", self.path)
        self._conn = _connect(self.path)
        if not fresh and not self._has_schema():
            raise foreign(self.path)
        if not fresh and not self._checked_unchanged():
            self._quick_check()
            self._mark_checked()
        # WAL: readers never block the writer; set only once the file is known to be ours
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SQLITE_SCHEMA)  # IF NOT EXISTS: a no-op on an existing gallery
        owner_only(self.path)
        self._claim_or_check()

    def _quick_check(self) -> None:
        """SQLite's quick check of the whole file: refuse a damaged gallery before writing into it."""
        try:
            result = [row[0] for row in self.conn.execute("PRAGMA quick_check(2)")]
        except sqlite3.DatabaseError as exc:
            result = [str(exc)]
        if result != ["ok"]:
            raise DamagedGalleryError(damaged(self.path, sqlite_problems(result)[0]), self.path, "check")

    def _file_state(self) -> list:
        """The gallery file's size and modification time and its write-ahead log's size (a missing log counts
        as empty): a write grows the log, and moving the log into the file changes the file."""
        info, wal = self.path.stat(), Path(f"{self.path}-wal")
        return [info.st_size, info.st_mtime_ns, wal.stat().st_size if wal.exists() else 0]

    def _checked_unchanged(self) -> bool:
        """Whether a large gallery passed its quick check and has not been written since (the check reads the
        whole file: ~0.8 s for a million faces)."""
        if self.path.stat().st_size < CHECK_ONCE_BYTES:
            return False
        try:
            return json.loads(Path(f"{self.path}.checked").read_text()) == self._file_state()
        except (OSError, ValueError):
            return False

    def _mark_checked(self) -> None:
        """Note that a large gallery, as it is now, passed its quick check."""
        if self.path.stat().st_size >= CHECK_ONCE_BYTES:
            aside = Path(f"{self.path}.checked.tmp")
            with open(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(json.dumps(self._file_state()))
            os.replace(aside, f"{self.path}.checked")

    def _claim_or_check(self) -> None:
        """A new gallery records its embedder; an existing one must match it."""
        with self.conn:
            meta = dict(self.conn.execute("SELECT key, value FROM meta"))
            if not meta:
                self.conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("schema", str(SCHEMA_VERSION)), ("embedder", self.embedder),
                    ("version", self.version), ("dim", str(self.dim))])
            # what the vector file beside a large gallery is checked against (older galleries get them now)
            self.conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                  [("generation", "0"), ("gallery_id", os.urandom(8).hex())])
            meta = dict(self.conn.execute("SELECT key, value FROM meta"))
        take_or_check_meta(self, meta)

    def _has_schema(self) -> bool:
        """Whether the file already holds keyface's tables."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is not None

    def _stamp(self) -> dict:
        """What identifies the gallery's content now: its id, generation, embedder, model version, dimension."""
        meta = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('gallery_id', 'generation')"))
        return {"gallery_id": meta.get("gallery_id"), "generation": int(meta.get("generation", 0)),
                "embedder": self.embedder, "version": self.version, "dim": self.dim}

    @one_call_at_a_time
    def is_empty(self) -> bool:
        """Whether no one is enrolled (one row read, whatever the gallery's size)."""
        return self.conn.execute("SELECT 1 FROM people LIMIT 1").fetchone() is None

    @one_call_at_a_time
    def people(self) -> list[tuple[str, int]]:
        """(name, photo count) for everyone, by name."""
        return list(self.conn.execute(
            "SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"))

    @one_call_at_a_time
    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored embeddings (M, D) float32 and the person name of each row."""
        rows = self.conn.execute(
            "SELECT p.name, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id "
            "JOIN people p ON p.id = ph.person_id WHERE e.embedder = ? AND e.version = ? ORDER BY p.name, e.photo_id",
            (self.embedder, self.version)).fetchall()
        vectors, bad = _vectors([r[1] for r in rows], self.dim)
        if bad:  # a NaN or huge vector would silently make its person unmatchable: refuse instead
            raise DamagedGalleryError(f"{self.path} has {len(bad)} damaged embedding(s) (first: {rows[bad[0]][0]!r}): "
                                      "reindex the gallery to re-embed them from their photos", self.path, "reindex")
        return vectors, np.array([r[0] for r in rows], dtype=object)

    @one_call_at_a_time
    def index(self, kind: str | None = None):
        """A search index ('exact', the default, or 'faiss') of the stored embeddings, rebuilt only after a
        change; a large gallery's exact index is its memory-mapped vector file (made when missing or stale)."""
        kind = kind or "exact"
        if kind not in ("exact", "faiss"):
            raise GalleryError(f"a gallery file is searched 'exact' or 'faiss', not {kind!r} (hnsw is PostgreSQL's)")
        stamp = (self.conn.execute("PRAGMA data_version").fetchone()[0] + self.conn.total_changes, kind)
        if self._cache is None or self._cache[0] != stamp:
            mapped = self._mapped_index()  # a large gallery: FAISS reads its rows from the vector file too
            if kind == "faiss":
                from keyface.recognition.core.approximate import FaissIndex, FaissRows  # faiss, where installed
                index = FaissRows(mapped) if mapped is not None else FaissIndex(*self.matrix())
            else:
                index = mapped if mapped is not None else ExactIndex(*self.matrix())
            self._cache = (stamp, index)
        return self._cache[1]

    def _mapped_index(self):
        """The exact index over the vector file beside the gallery (made if it is large and the file is missing
        or stale), or None for a gallery small enough to read from SQLite."""
        # the largest rowid bounds the row count (each row its own, from 1), read at once where COUNT(*) reads
        # every row: a small gallery is never looked for a vector file
        if (self.conn.execute("SELECT MAX(rowid) FROM embeddings").fetchone()[0] or 0) < VECTOR_FILE_ROWS:
            return None
        files, stamp = VectorFile(self.path), self._stamp()
        loaded = files.load(stamp)
        if loaded is None:
            count = self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE embedder = ? AND version = ?",
                                      (self.embedder, self.version)).fetchone()[0]
            if count < VECTOR_FILE_ROWS:
                return None
            loaded = self._write_vector_file(files)
        names = dict(self.conn.execute("SELECT id, name FROM people"))
        return RowIndex(*loaded, names, lineage=files.lineage())

    def _write_vector_file(self, files) -> tuple[np.ndarray, np.ndarray]:
        """Write every embedding into the vector file, read in one snapshot a batch at a time (memory stays
        bounded) and checked; (vectors, person ids) mapped from it."""
        with self.conn:  # one read transaction: the rows and the generation they belong to agree
            self.conn.execute("BEGIN")
            stamp = self._stamp()
            cursor = self.conn.execute(
                "SELECT ph.person_id, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id "
                "WHERE e.embedder = ? AND e.version = ? ORDER BY e.photo_id", (self.embedder, self.version))
            files.write(stamp, self._checked_batches(cursor))
        return files.load(stamp)

    def _checked_batches(self, cursor, size: int = 50_000):
        """(vectors, person ids) of the rows, `size` at a time, each checked (dimension, finite, unit)."""
        while rows := cursor.fetchmany(size):
            vectors, bad = _vectors([r[1] for r in rows], self.dim)
            if bad:
                raise DamagedGalleryError(f"{self.path} has damaged embeddings: reindex the gallery to re-embed "
                                          "them from their photos", self.path, "reindex")
            yield vectors, np.array([r[0] for r in rows], np.int64)

    @one_call_at_a_time
    def close(self) -> None:
        """Close the database and let go of the gallery."""
        if getattr(self, "_conn", None) is not None:
            self._conn.close()
            self._conn = None
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # a gallery dropped without close() must not keep others out
        if getattr(self, "_using", None) is not None:
            self.close()


class GalleryLock:
    """An advisory lock on a gallery: every command holds it shared while the gallery is open;
    maintenance that rewrites the file holds it exclusive, and refuses rather than waits when another
    process has the gallery open. The lock file lives in a private folder of the user's, named by the
    gallery's real path, so that reading a gallery leaves nothing beside it."""

    def __init__(self, path: Path, exclusive: bool):
        if not path.parent.is_dir():
            raise GalleryError(f"gallery folder not found: {path.parent}")
        try:
            self.fd = os.open(lock_file(path), os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise GalleryError(f"cannot open the gallery {path}: {exc.strerror}") from None
        if exclusive:
            self._take(fcntl.LOCK_EX, 0.0, f"{path} is in use by another keyface process; try again when it ends")
        else:
            self._take(fcntl.LOCK_SH, LOCK_WAIT, f"{path} is being rewritten by another keyface process "
                                                 f"(waited {LOCK_WAIT:.0f} s); try again later",
                       f"waiting for {path}: another keyface process is rewriting it (reindex); up to "
                       f"{LOCK_WAIT:.0f} s")

    def _take(self, mode: int, wait: float, busy: str, waiting: str = "") -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if waiting:  # said once, at the start: a command that waits silently looks hung
                    log.info("%s", waiting)
                    waiting = ""
                if time.monotonic() >= deadline:
                    self.release()
                    raise GalleryError(busy) from None
                time.sleep(0.05)

    def release(self) -> None:
        """Let go (closing the descriptor drops the lock)."""
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


def lock_file(path: Path) -> Path:
    """Where a gallery's lock lives: `keyface-UID/` in the temporary folder, made owner-only."""
    import hashlib
    import tempfile
    folder = Path(tempfile.gettempdir()) / f"keyface-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():  # someone else's: not a lock to trust
        raise GalleryError(f"{folder} is not this user's own folder; remove it or set TMPDIR elsewhere")
    digest = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return folder / f"{digest}.lock"


def vector_ok(vectors: np.ndarray) -> np.ndarray:
    """Per row: finite and of unit length (as every embedder stores them)."""
    finite = np.isfinite(vectors).all(axis=1)
    with np.errstate(over="ignore"):  # a huge stored value overflows to inf: not unit length, as wanted
        norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0.0).astype(np.float64), axis=1)
    return finite & (np.abs(norms - 1.0) < 1e-3)


def _vectors(blobs: list[bytes], dim: int) -> tuple[np.ndarray | None, list[int]]:
    """Stored embeddings as a float32 matrix (N, dim), and the rows that are damaged (wrong length, not
    finite, not unit length); no matrix when a row has the wrong length."""
    bad = [i for i, blob in enumerate(blobs) if len(blob) != 4 * dim]
    if bad:
        return None, bad
    vectors = np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), dim)
    return vectors, np.flatnonzero(~vector_ok(vectors)).tolist()


def owner_only(path: Path) -> None:
    """The gallery and SQLite's files beside it readable by their owner only (biometric data)."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")):
        try:
            if p.exists() and stat.S_IMODE(p.stat().st_mode) != 0o600:
                os.chmod(p, 0o600)
        except OSError as exc:  # not ours to change: say so, the data is still there
            log.warning("cannot make %s owner-only: %s", p, exc.strerror)


def _connect(path: Path) -> sqlite3.Connection:
    """Open the SQLite file, creating it readable by its owner only."""
    if not path.parent.is_dir():
        raise GalleryError(f"gallery folder not found: {path.parent}")
    try:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # biometric data: owner only
        if os.access(path, os.R_OK) and not os.access(path, os.W_OK):  # SQLite's journal writes even to read
            raise PermissionError(13, "it is read-only here, and SQLite writes to a gallery it reads (its journal): "
                                      "make it writable, or read a copy")
        if not os.access(path, os.R_OK | os.W_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        raise GalleryError(f"cannot open the gallery {path}: {exc.strerror or exc}") from None
    try:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)  # one_call_at_a_time
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails here on a non-database
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from None
    return conn


def take_or_check_meta(store, meta: dict) -> None:
    """A store opened without an embedder takes the gallery's own from its meta; one opened with one is refused
    unless it is the gallery's (check_made_by)."""
    if store.embedder is None:
        store.embedder, store.version, store.dim = meta["embedder"], meta["version"], int(meta["dim"])
    check_made_by(store.path, meta, store.embedder, store.version)


def check_made_by(path, meta: dict, embedder: str, version: str) -> None:
    """Refuse a gallery (its meta) made by another embedder or model version than the one opening it."""
    if (meta["embedder"], meta["version"]) == (embedder, version):
        return
    (made_file, precision), (asked_file, asked_precision) = split_version(meta["version"]), split_version(version)
    if meta["embedder"] == embedder and made_file == asked_file:  # another precision only
        raise OtherModelError(f"{path} was embedded in {precision} by embedder {embedder!r}, not in "
                              f"{asked_precision}; open it in {precision}, or reindex it",
                              path, embedder, embedder, precision)
    if meta["embedder"] == embedder:  # the same embedder's model file changed: retrained, recalibrated, rebuilt
        raise OtherModelError(f"{path} was made with model {meta['version']} of embedder {embedder!r}, not {version}: "
                              "reindex it to re-embed its photos with this one", path, embedder, embedder)
    raise OtherModelError(
        f"{path} was made with embedder {meta['embedder']!r} (model {meta['version']}), not "
        f"{embedder!r} (model {version}); open it with embedder {meta['embedder']!r}, or reindex it: "
        f"re-embed its photos with embedder {embedder!r}", path, meta["embedder"], embedder)
