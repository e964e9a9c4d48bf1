"""The gallery: one SQLite file of people, photos and embeddings; every write is one transaction."""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.errors import KeyfaceError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, source TEXT NOT NULL, box TEXT NOT NULL, keypoints TEXT NOT NULL,
    added TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE (person_id, sha256));
CREATE TABLE IF NOT EXISTS embeddings (
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE, embedder TEXT NOT NULL,
    version TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (photo_id, embedder, version));
"""
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class GalleryError(KeyfaceError):
    """The gallery cannot do what was asked (wrong embedder, unknown person, bad name)."""


@dataclass(frozen=True)
class Enrolment:
    """One face to store: who, from which photo, where the face is, and its embedding."""
    person: str
    sha256: str
    source: str
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    embedding: np.ndarray


def check_name(name: str) -> str:
    """A person's name, stripped; refuse empty names, path separators and control characters."""
    clean = name.strip()
    if not clean or _BAD_NAME.search(clean) or len(clean) > 200:
        raise GalleryError(f"invalid person name {name!r}: use 1-200 printable characters without / or \\")
    return clean


class Gallery:
    """People, their photos and embeddings for one embedder (name + model version) in SQLite."""

    def __init__(self, path: str | os.PathLike, embedder: str, version: str, dim: int):
        self.path = Path(path)
        self.embedder, self.version, self.dim = embedder, version, dim
        self._cache = None  # (data version, ExactIndex)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.conn = _connect(self.path)
        if not fresh and not self._has_schema():
            self.conn.close()
            raise GalleryError(f"{self.path} is an SQLite file but not a keyface gallery; refusing to touch it")
        # WAL: readers never block the writer; set only once the file is known to be ours
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(_SCHEMA)  # IF NOT EXISTS: a no-op on an existing gallery
        self._claim_or_check()

    def _claim_or_check(self) -> None:
        """A new gallery records its embedder; an existing one must match it."""
        with self.conn:
            meta = dict(self.conn.execute("SELECT key, value FROM meta"))
            if not meta:
                self.conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("schema", str(SCHEMA_VERSION)), ("embedder", self.embedder),
                    ("version", self.version), ("dim", str(self.dim))])
                meta = dict(self.conn.execute("SELECT key, value FROM meta"))
        if (meta["embedder"], meta["version"]) != (self.embedder, self.version):
            raise GalleryError(
                f"{self.path} was made with embedder {meta['embedder']!r} (model {meta['version']}), not "
                f"{self.embedder!r} (model {self.version}); use --embedder {meta['embedder']}, or run "
                f"`keyface reindex --gallery {self.path} --embedder {self.embedder}` to re-embed its photos")

    def _has_schema(self) -> bool:
        """Whether the file already holds keyface's tables."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is not None

    def add(self, faces: list[Enrolment]) -> int:
        """Store faces in one transaction; a photo already stored for that person is skipped. Returns added."""
        added = 0
        with self.conn:
            for face in faces:
                person_id = self._person_id(check_name(face.person), create=True)
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO photos (person_id, sha256, source, box, keypoints) VALUES (?,?,?,?,?)",
                    (person_id, face.sha256, face.source, json.dumps([round(float(v), 2) for v in face.box]),
                     json.dumps(np.round(np.asarray(face.keypoints, float), 2).tolist())))
                if cur.rowcount == 0:
                    continue
                self.conn.execute("INSERT INTO embeddings VALUES (?,?,?,?)", (
                    cur.lastrowid, self.embedder, self.version, _blob(face.embedding, self.dim)))
                added += 1
        return added

    def _person_id(self, name: str, create: bool = False) -> int:
        row = self.conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            raise GalleryError(f"no person named {name!r} in {self.path}")
        return self.conn.execute("INSERT INTO people (name) VALUES (?)", (name,)).lastrowid

    def people(self) -> list[tuple[str, int]]:
        """(name, photo count) for everyone, by name."""
        return list(self.conn.execute(
            "SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"))

    def rename(self, old: str, new: str) -> None:
        """Rename a person (refused if the new name is taken)."""
        new = check_name(new)
        with self.conn:
            person_id = self._person_id(old)
            if self.conn.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise GalleryError(f"{new!r} is already in the gallery")
            self.conn.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))

    def remove(self, name: str) -> int:
        """Remove a person with their photos and embeddings; return how many photos went."""
        with self.conn:
            person_id = self._person_id(name)
            n = self.conn.execute("SELECT COUNT(*) FROM photos WHERE person_id = ?", (person_id,)).fetchone()[0]
            self.conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return n

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored embeddings (M, D) float32 and the person name of each row."""
        rows = self.conn.execute(
            "SELECT p.name, e.vector FROM embeddings e JOIN photos ph ON ph.id = e.photo_id "
            "JOIN people p ON p.id = ph.person_id WHERE e.embedder = ? AND e.version = ? ORDER BY p.name, e.photo_id",
            (self.embedder, self.version)).fetchall()
        vectors = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), self.dim)
        return vectors, np.array([r[0] for r in rows], dtype=object)

    def index(self, kind: str = "exact"):
        """A search index ('exact' or 'faiss') of the stored embeddings, rebuilt only after a change."""
        from recognition.search import ExactIndex, FaissIndex
        stamp = (self.conn.execute("PRAGMA data_version").fetchone()[0] + self.conn.total_changes, kind)
        if self._cache is None or self._cache[0] != stamp:
            build = FaissIndex if kind == "faiss" else ExactIndex
            self._cache = (stamp, build(*self.matrix()))
        return self._cache[1]

    def close(self) -> None:
        """Close the database."""
        self.conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    """Open the SQLite file, creating it readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # biometric data: owner only
    try:
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails here on a non-database
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise GalleryError(f"{path} is not a keyface gallery ({exc})") from None
    return conn


def _blob(vector: np.ndarray, dim: int) -> bytes:
    """An embedding as float32 bytes, checked for its dimension and finiteness."""
    v = np.asarray(vector, np.float32).reshape(-1)
    if v.shape != (dim,) or not np.isfinite(v).all():
        raise GalleryError(f"embedding has shape {v.shape} (expected ({dim},)) or non-finite values")
    return v.tobytes()


def read_photos(path: Path) -> list[tuple[str, str, str]]:
    """(person, sha256, source) of every photo in a gallery file, whatever embedder made it."""
    if not Path(path).is_file():
        raise GalleryError(f"gallery not found: {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT p.name, ph.sha256, ph.source FROM photos ph "
                                 "JOIN people p ON p.id = ph.person_id ORDER BY ph.id"))
    except sqlite3.DatabaseError as exc:
        raise GalleryError(f"{path} is not a keyface gallery ({exc})") from None
    finally:
        conn.close()


def read_meta(path: Path) -> dict:
    """A gallery's embedder, model version and dimension, read without claiming the file."""
    if not Path(path).is_file():
        raise GalleryError(f"gallery not found: {path} (enrol people first with `keyface enroll`)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        raise GalleryError(f"{path} is not a keyface gallery ({exc})") from None
    finally:
        conn.close()
