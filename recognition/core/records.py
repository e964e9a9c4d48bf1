"""What a gallery holds, whichever store keeps it (a SQLite file, core.store; PostgreSQL, core.pg_store): the
enrolment record of one face, the one rule for a person's name, a photo's path as stored, and the check on a
vector before it is stored."""
from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from keyface.data.errors import GalleryError

# The tables of a gallery file (core.store); a PostgreSQL gallery has the same ones (core.pg_store)
SCHEMA_VERSION = 1
SQLITE_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS thumbnails (
    person_id INTEGER PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE, jpeg BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS photos_by_sha256 ON photos (sha256);
CREATE TRIGGER IF NOT EXISTS generation_on_insert AFTER INSERT ON embeddings BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_on_delete AFTER DELETE ON embeddings BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS generation_on_update AFTER UPDATE ON embeddings BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'; END;
"""

_BAD_NAME = re.compile(r"[/\\]")
# control, format (zero-width, bidi overrides), surrogate, unassigned, line/paragraph separators
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"}


@dataclass(frozen=True)
class Enrolment:
    """One face to store: who, from which photo, where the face is, and its embedding."""
    person: str
    sha256: str
    source: str
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    embedding: np.ndarray

    def face_json(self) -> tuple[str, str]:
        """The face's box and keypoints as every gallery stores them: JSON, to 0.01 px."""
        return (json.dumps([round(float(v), 2) for v in self.box]),
                json.dumps(np.round(np.asarray(self.keypoints, float), 2).tolist()))


RESERVED_NAMES = {"unknown"}


def check_name(name: str, existing: bool = False) -> str:
    """The one rule for a person's name, in every command: Unicode NFC, stripped, 1-200 characters,
    no path separators and no control, format (zero-width, bidi override), surrogate or unassigned
    characters, and not "unknown", "." or "..". Names that look alike are then the same name. An
    `existing` name, looked up, may be "." or "..": galleries made before that rule can still rename them."""
    clean = unicodedata.normalize("NFC", name).strip() if isinstance(name, str) else ""
    bad = next((c for c in clean if unicodedata.category(c) in _BAD_CATEGORIES), None)
    if not clean or bad is not None or _BAD_NAME.search(clean) or len(clean) > 200:
        why = f" (it contains U+{ord(bad):04X})" if bad is not None else ""
        # the name as typed, its unprintable characters written as \uXXXX (one line, nothing hidden)
        printable = "'" + "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _BAD_CATEGORIES else c
                                  for c in name) + "'" if isinstance(name, str) else repr(name)
        raise GalleryError(f"invalid person name {printable}{why}: use 1-200 printable characters without / or \\")
    if clean.casefold() in RESERVED_NAMES:  # identify prints it for strangers: a person so named would read as one
        raise GalleryError(f"invalid person name {clean!r}: keyface calls faces it does not know so")
    if clean in (".", "..") and not existing:  # an address's path reads them as folders: the page never could
        raise GalleryError(f"invalid person name {clean!r}: a name is more than dots")
    return clean


def path_text(path) -> str | bytes:
    """A photo path as the gallery stores it: text where it is valid UTF-8, else its raw bytes."""
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def checked_vector(vector: np.ndarray, dim: int) -> np.ndarray:
    """An embedding to store, as float32 (dim,), refused if it has another dimension or non-finite values."""
    v = np.asarray(vector, np.float32).reshape(-1)
    if v.shape != (dim,) or not np.isfinite(v).all():
        raise GalleryError(f"embedding has shape {v.shape} (expected ({dim},)) or non-finite values")
    return v
