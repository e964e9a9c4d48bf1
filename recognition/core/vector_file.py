"""A large gallery's embeddings kept beside it as a memory-mapped matrix, so that identify never reads every
vector out of SQLite again: GALLERY.vectors (a 4 KB JSON header, then float32 rows) and GALLERY.vector-people
(the person id of each row, int64).

The header names the gallery (its `gallery_id`) and the `generation` of its content that the rows hold; the
gallery bumps its generation in the same transaction as every change to its embeddings (SQLite triggers),
so files that do not match are never trusted: they are rebuilt. Rebuilt files are written aside and moved
into place (owner-only); an enrolment appends its rows and then moves the header on, under a lock, so a
reader sees either the old rows and header (and rebuilds) or the new ones.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import numpy as np


HEADER = 4096
MAGIC = b"keyface-vectors 1\n"


class VectorFile:
    """The two files beside a gallery, and what their header says."""

    def __init__(self, gallery: Path):
        self.vectors = Path(f"{gallery}.vectors")
        self.people = Path(f"{gallery}.vector-people")
        self.lock_path = Path(f"{gallery}.vectors.lock")
        self.mapped_inode: int | None = None  # the vector file's inode when load() last mapped its rows

    def header(self) -> dict | None:
        """The header, or None if there is no file or it is not one of ours."""
        try:
            with open(self.vectors, "rb") as fh:
                head = fh.read(HEADER)
        except OSError:
            return None
        if not head.startswith(MAGIC):
            return None
        try:
            return json.loads(head[len(MAGIC):].rstrip(b"\0 \n"))
        except ValueError:
            return None

    def load(self, stamp: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """(vectors (N, D) memory-mapped, person ids (N,)) if the files hold exactly `stamp`'s content."""
        inode = self._inode()
        header = self.header()
        if header is None or {k: header.get(k) for k in stamp} != stamp:
            return None
        count, dim = header["count"], header["dim"]
        vectors = np.memmap(self.vectors, np.float32, "r", offset=HEADER, shape=(count, dim)) if count else \
            np.zeros((0, dim), np.float32)
        ids = np.fromfile(self.people, np.int64, count=count)
        if len(ids) != count or self._inode() != inode:  # short, or replaced while it was being read
            return None
        self.mapped_inode = inode
        return vectors, ids

    def write(self, stamp: dict, batches) -> None:
        """Replace both files with the rows of `batches` ((vectors, person ids) pairs), written aside as they
        come (memory stays bounded) and then moved into place, owner-only."""
        with self._locked():
            people_aside, vectors_aside = Path(f"{self.people}.tmp"), Path(f"{self.vectors}.tmp")
            try:
                _write_rows(people_aside, vectors_aside, stamp, batches)
            except BaseException:
                people_aside.unlink(missing_ok=True)
                vectors_aside.unlink(missing_ok=True)
                raise
            os.replace(people_aside, self.people)  # the ids first: the header that trusts them comes last
            os.replace(vectors_aside, self.vectors)

    def append(self, before: dict, after: dict, vectors: np.ndarray, ids: np.ndarray) -> bool:
        """Add rows to files that hold `before`'s content, moving them on to `after`; False (nothing done) if
        they hold anything else."""
        with self._locked():
            header = self.header()
            if header is None or {k: header.get(k) for k in before} != before:
                return False
            count = header["count"]
            with open(self.people, "r+b") as fh:
                fh.seek(count * 8)
                fh.write(ids.astype(np.int64).tobytes())
                fh.truncate()
                os.fsync(fh.fileno())
            with open(self.vectors, "r+b") as fh:
                fh.seek(HEADER + count * 4 * after["dim"])
                fh.write(np.ascontiguousarray(vectors, np.float32).tobytes())
                fh.truncate()
                os.fsync(fh.fileno())
                fh.seek(0)
                fh.write(_header({**after, "count": count + len(ids)}))  # last: the rows are there first
                os.fsync(fh.fileno())
            return True

    def lineage(self) -> tuple[str, int, int] | None:
        """(file, inode, offset of the first row) of the rows load() mapped: rows are only ever appended to the
        file while its inode stays the same, since a rebuilt file replaces it (a new inode)."""
        return None if self.mapped_inode is None else (str(self.vectors), self.mapped_inode, HEADER)

    def _inode(self) -> int | None:
        try:
            return os.stat(self.vectors).st_ino
        except OSError:
            return None

    def _locked(self):
        return _Lock(self.lock_path)


class _Lock:
    """An exclusive lock on a file beside the gallery, for writers of the vector files."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = open(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _write_rows(people_aside: Path, vectors_aside: Path, stamp: dict, batches) -> None:
    """Both files' rows, then the header that counts them, synced."""
    count = 0
    with _new_file(people_aside) as ids_out, _new_file(vectors_aside) as rows_out:
        rows_out.write(b"\0" * HEADER)
        for vectors, ids in batches:
            ids_out.write(np.ascontiguousarray(ids, np.int64).tobytes())
            rows_out.write(np.ascontiguousarray(vectors, np.float32).tobytes())
            count += len(ids)
        rows_out.seek(0)
        rows_out.write(_header({**stamp, "count": count}))
        for fh in (ids_out, rows_out):
            fh.flush()
            os.fsync(fh.fileno())


def _new_file(path: Path):
    """A file opened for writing, made (or emptied) readable by its owner only."""
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _header(content: dict) -> bytes:
    text = MAGIC + json.dumps(content, sort_keys=True).encode()
    if len(text) > HEADER - 1:
        raise ValueError("vector file header too long")
    return text + b"\n" + b"\0" * (HEADER - len(text) - 1)
