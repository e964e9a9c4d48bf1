"""Copying a gallery between a file (SQLite) and PostgreSQL, either way: people, photos, embeddings and
thumbnails read from the source without changing it, written into an empty target in one transaction,
then read back from both and compared (names, photo hashes and vectors, bit for bit)."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import GalleryError
from keyface.data.paths import is_database_uri
from keyface.recognition.core import pg_connection, pg_store
from keyface.recognition.core.gallery_check import connect_read_only, read_photos
from keyface.recognition.core.records import path_text

log = logging.getLogger(__name__)

BATCH = 20_000  # rows read, written and compared at a time: memory stays bounded at any gallery size
_ROWS = ("SELECT p.name, ph.sha256, ph.source, ph.box, ph.keypoints, e.vector FROM photos ph "
         "JOIN people p ON p.id = ph.person_id JOIN embeddings e ON e.photo_id = ph.id "
         "WHERE e.embedder = {0} AND e.version = {0} ORDER BY p.name{1}, ph.sha256")


@dataclass(frozen=True)
class Row:
    """One stored face as it moves between galleries: who, which photo, where the face was, its vector."""
    person: str
    sha256: str
    source: bytes
    box: str  # JSON, as stored
    keypoints: str  # JSON, as stored
    vector: np.ndarray


@dataclass(frozen=True)
class Counts:
    """What a gallery holds."""
    people: int
    photos: int
    embeddings: int
    thumbnails: int


class Reader:
    """A gallery opened only to read: its counts, its rows (by person, then photo hash) and thumbnails."""

    def __init__(self, location, embedder: str, version: str, dim: int):
        self.location, self.embedder, self.version, self.dim = location, embedder, version, dim
        self.database = is_database_uri(location)

    @contextmanager
    def _cursor(self, binary: bool = False):
        if self.database:
            db = pg_connection.Connection(str(self.location), ("SET default_transaction_read_only = on",))
            try:
                with db.guarded() as conn, conn.transaction(), conn.cursor(binary=binary) as cur:
                    yield cur
            finally:
                db.close()
        else:
            conn = connect_read_only(Path(self.location))
            try:
                yield conn.cursor()
            finally:
                conn.close()

    def counts(self) -> Counts:
        """People, photos, embeddings (of the gallery's embedder) and thumbnails."""
        mark = "%s" if self.database else "?"
        with self._cursor() as cur:
            found = [cur.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("people", "photos")]
            found.append(cur.execute(f"SELECT COUNT(*) FROM embeddings WHERE embedder = {mark} AND version = {mark}",
                                     (self.embedder, self.version)).fetchone()[0])
            found.append(cur.execute("SELECT COUNT(*) FROM thumbnails").fetchone()[0])
        return Counts(*map(int, found))

    def rows(self) -> Iterator[list[Row]]:
        """Every stored face, BATCH at a time, by person name (byte order) and photo hash."""
        query = _ROWS.format("%s", ' COLLATE "C"') if self.database else _ROWS.format("?", "")
        with self._cursor(binary=True) as cur:
            cur.execute(query, (self.embedder, self.version))
            while batch := cur.fetchmany(BATCH):
                yield [self._row(*r) for r in batch]

    def _row(self, person, sha256, source, box, keypoints, vector) -> Row:
        if self.database:
            vector, box, keypoints = pg_connection.vector_from_binary(bytes(vector)), _text(box), _text(keypoints)
        else:
            vector = np.frombuffer(vector, np.float32) if len(vector) == 4 * self.dim else np.full(1, np.nan, np.float32)
        return Row(_text(person), _text(sha256), os.fsencode(source) if isinstance(source, str) else bytes(source),
                   box, keypoints, vector)

    def photos(self) -> list[tuple[str, str, str]]:
        """(person, sha256, source) of every photo, in the order they were added, embedded or not (what
        reindex reads again)."""
        if not self.database:
            return read_photos(Path(self.location))
        with self._cursor() as cur:
            return [(n, sha, os.fsdecode(bytes(src))) for n, sha, src in cur.execute(
                "SELECT p.name, ph.sha256, ph.source FROM photos ph JOIN people p ON p.id = ph.person_id "
                "ORDER BY ph.id").fetchall()]

    def names(self) -> list[str]:
        """Everyone's name, with or without photos."""
        with self._cursor() as cur:
            return [_text(r[0]) for r in cur.execute("SELECT name FROM people").fetchall()]

    def thumbnails(self) -> list[tuple[str, bytes]]:
        """(person, JPEG) for everyone who has one."""
        with self._cursor() as cur:
            return [(_text(n), bytes(j)) for n, j in cur.execute(
                "SELECT p.name, t.jpeg FROM thumbnails t JOIN people p ON p.id = t.person_id").fetchall()]


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, memoryview)) else value


def _with_bar(source: Reader, what: str) -> Iterator[list[Row]]:
    """The source's rows, BATCH at a time, with a progress bar of its photos on a terminal (a million take minutes)."""
    from tqdm import tqdm
    with tqdm(total=source.counts().embeddings, desc=what, unit="face", leave=False, disable=None) as bar:
        for batch in source.rows():
            yield batch
            bar.update(len(batch))


def copy_into(source: Reader, target, replace: bool = False) -> None:
    """Every row and thumbnail of the source into an empty target store (SQLiteStore or PostgresStore), in one
    transaction of the target's: a copy that fails leaves the target as it was. With `replace` (a database
    only), the target's whole content and its embedder are replaced instead, in that same transaction."""
    postgres = isinstance(target, pg_store.PostgresStore)
    if replace and not postgres:
        raise GalleryError("only a database gallery is replaced in place; a file is rewritten beside itself")
    if not replace and not target.is_empty():
        raise GalleryError(f"{target.path} already holds people: migrate copies into a new or empty gallery only")
    if postgres:
        _copy_into_postgres(source, target, replace)
    else:
        _copy_into_sqlite(source, target)


def _copy_into_sqlite(source: Reader, target) -> None:
    conn, ids = target.conn, {}
    with conn:
        for name in source.names():
            ids[name] = conn.execute("INSERT INTO people (name) VALUES (?)", (name,)).lastrowid
        for batch in _with_bar(source, f"copying into {target.path}"):
            for row in batch:
                photo = conn.execute("INSERT INTO photos (person_id, sha256, source, box, keypoints) VALUES (?,?,?,?,?)",
                                     (ids[row.person], row.sha256, path_text(row.source), row.box,
                                      row.keypoints)).lastrowid
                conn.execute("INSERT INTO embeddings VALUES (?,?,?,?)", (photo, target.embedder, target.version,
                                                                         np.asarray(row.vector, np.float32).tobytes()))
        conn.executemany("INSERT INTO thumbnails VALUES (?, ?)", [(ids[n], j) for n, j in source.thumbnails()])


def _copy_into_postgres(source: Reader, target, replace: bool) -> None:
    """COPY in binary, the HNSW index dropped first and built once at the end (far faster than row by row)."""
    with target.db.guarded() as conn, conn.transaction():
        vector_type = pg_connection.vector_dumper(conn)
        conn.execute("DROP INDEX IF EXISTS embeddings_hnsw")
        if replace:
            _emptied(conn, source)
        ids = {name: i for i, name in enumerate(source.names(), 1)}
        with conn.cursor() as cur, cur.copy("COPY people (id, name) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "text"])
            for name, i in ids.items():
                cp.write_row((i, name))
        photo_id = 0
        for batch in _with_bar(source, f"copying into {target.path}"):
            photo_id = _copy_batch(conn, batch, ids, photo_id, source, vector_type)
        with conn.cursor() as cur, cur.copy("COPY thumbnails (person_id, jpeg) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "bytea"])
            for name, jpeg in source.thumbnails():
                cp.write_row((ids[name], jpeg))
        conn.execute("SELECT setval('people_id_seq', %s), setval('photos_id_seq', %s)",
                     (max(len(ids), 1), max(photo_id, 1)))
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        log.info("building the search index of %s (HNSW): a minute or more a million faces", target.path)
        conn.execute(pg_store.HNSW_INDEX)


def _emptied(conn, source: Reader) -> None:
    """A database gallery emptied and made over to the source's embedder (inside the caller's transaction)."""
    conn.execute("TRUNCATE people, photos, embeddings, thumbnails RESTART IDENTITY")
    conn.execute(f"ALTER TABLE embeddings ALTER COLUMN vector TYPE vector({int(source.dim)})")
    for key, value in (("embedder", source.embedder), ("version", source.version), ("dim", str(source.dim))):
        conn.execute("UPDATE meta SET value = %s WHERE key = %s", (value, key))


def _copy_batch(conn, batch: list[Row], ids: dict, photo_id: int, source: Reader, vector_type) -> int:
    """One batch of rows COPYed into photos and embeddings; the last photo id used."""
    first = photo_id
    with conn.cursor() as cur, cur.copy("COPY photos (id, person_id, sha256, source, box, keypoints) "
                                        "FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "int8", "text", "bytea", "text", "text"])
        for row in batch:
            photo_id += 1
            cp.write_row((photo_id, ids[row.person], row.sha256, row.source, row.box, row.keypoints))
    with conn.cursor() as cur, cur.copy("COPY embeddings (photo_id, person_id, embedder, version, vector) "
                                        "FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "int8", "text", "text", vector_type.oid])
        for k, row in enumerate(batch, first + 1):
            cp.write_row((k, ids[row.person], source.embedder, source.version, vector_type(row.vector)))
    return photo_id


def differences(source: Reader, target: Reader) -> list[str]:
    """What differs between two galleries: counts, then each row's person, photo hash, face and vector."""
    problems = []
    if source.counts() != target.counts():
        problems.append(f"counts differ: {source.counts()} against {target.counts()}")
    for n, (a, b) in enumerate(zip(_flat(source.rows()), _flat(target.rows()))):
        same = (a.person, a.sha256, a.source, json.loads(a.box)) == (b.person, b.sha256, b.source, json.loads(b.box))
        if not same or not np.array_equal(a.vector, b.vector):
            problems.append(f"row {n + 1} differs: {a.person!r} {a.sha256[:12]} against {b.person!r} {b.sha256[:12]}")
            break
    if sorted(source.thumbnails()) != sorted(target.thumbnails()):
        problems.append("thumbnails differ")
    return problems


def _flat(batches: Iterator[list[Row]]) -> Iterator[Row]:
    for batch in batches:
        yield from batch
