"""Exact nearest-person search over a gallery's embeddings, in NumPy: over a matrix, or over the rows of a
gallery file's vector file (approximate search for very large galleries is in approximate.py).

The vector file keeps a large gallery's embeddings beside it as a memory-mapped matrix, so that identify
never reads every vector out of SQLite again: GALLERY.vectors (a 4 KB JSON header, then float32 rows) and
GALLERY.vector-people (the person id of each row, int64). The header names the gallery (its `gallery_id`)
and the `generation` of its content that the rows hold; the gallery bumps its generation in the same
transaction as every change to its embeddings (SQLite triggers), so files that do not match are never
trusted: they are rebuilt. Rebuilt files are written aside and moved into place (owner-only); an enrolment
appends its rows and then moves the header on, under a lock, so a reader sees either the old rows and
header (and rebuilds) or the new ones.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

CANDIDATES = 256  # RowIndex: nearest rows searched for the k nearest distinct people before all rows are


class Match(NamedTuple):
    """A candidate identity for a probe: the person and their nearest stored embedding's distance."""
    person: str
    distance: float


def first_per_person(pairs, k: int) -> dict:
    """{person: distance} of the first k distinct people in (person, distance) pairs given nearest first: each
    person's closest stored face, at least 0 (rounding takes a photo's own vector to -1e-7, shown "-0.000")."""
    found: dict = {}
    for person, distance in pairs:
        found.setdefault(person, max(float(distance), 0.0))
        if len(found) == k:
            break
    return found


def cosine_distances(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between L2-normalised rows: (N, D) x (M, D) -> (N, M), in [0, 2]."""
    return 1.0 - np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T


class ExactIndex:
    """Every stored vector grouped by person once, so a query is one matrix product and a block-wise min."""
    kind = "exact"

    def __init__(self, vectors: np.ndarray, names: np.ndarray):
        names = np.asarray(names, dtype=object)
        order = np.argsort(names.astype(str), kind="stable")
        self.vectors = np.ascontiguousarray(np.asarray(vectors, np.float32)[order])
        names = names[order]
        self.starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if len(names) else np.zeros(0, int)
        self.people = names[self.starts]

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, the k nearest distinct people (by their closest photo), nearest first."""
        probes = np.atleast_2d(np.asarray(probes, np.float32))
        if len(self.vectors) == 0:
            return [[] for _ in range(len(probes))]  # an empty gallery: nobody is near
        per_person = np.minimum.reduceat(cosine_distances(probes, self.vectors), self.starts, axis=1)
        k = min(k, len(self.people))
        top = np.argpartition(per_person, k - 1, axis=1)[:, :k]
        out = []
        for row, cand in zip(per_person, top):
            cand = cand[np.argsort(row[cand])]
            out.append([Match(str(self.people[j]), max(float(row[j]), 0.0)) for j in cand])  # as first_per_person
        return out


class RowIndex:
    """Exact search over rows kept in gallery order (not grouped by person): the nearest CANDIDATES rows
    give the k nearest distinct people whenever k of them are among those rows (else every row is used)."""
    kind = "exact"

    def __init__(self, vectors: np.ndarray, ids: np.ndarray, names: dict[int, str], lineage: tuple | None = None):
        self.vectors, self.ids, self.names = vectors, ids, names
        # (file, inode, offset) of the vector file the rows are mapped from: while it stays the same, rows are only
        # ever appended to it (a rebuilt file is a new inode)
        self.lineage = lineage

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, the k nearest distinct people (by their closest row), nearest first; none when
        the gallery is empty."""
        distances = cosine_distances(np.atleast_2d(np.asarray(probes, np.float32)), self.vectors)
        return [self._people(row, k) if len(row) else [] for row in distances]

    def _people(self, row: np.ndarray, k: int) -> list[Match]:
        """The k nearest distinct people of one probe's distances to every row."""
        for size in (min(CANDIDATES, len(row)), len(row)):
            near = np.argpartition(row, size - 1)[:size] if size < len(row) else np.arange(len(row))
            near = near[np.argsort(row[near], kind="stable")]
            found = first_per_person(((int(self.ids[i]), row[i]) for i in near), k)
            if len(found) == k or size == len(row):
                return [Match(self.names[p], d) for p, d in found.items()]
        return []


def nearest_people(probes: np.ndarray, gallery: np.ndarray, names: np.ndarray, k: int = 3) -> list[list[Match]]:
    """One-off search: build an ExactIndex over (gallery, names) and query it."""
    return ExactIndex(gallery, names).search(probes, k)


# The vector file: a gallery file's rows, memory-mapped

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
