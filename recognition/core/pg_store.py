"""A gallery in PostgreSQL: the SQLite store's people, photos and embeddings and its rules, for galleries
that several machines share. Vectors live in a pgvector column and are searched inside the database (an
HNSW index, then the nearest rows re-ranked per person), so every `keyface serve` on one database sees
every other's enrolments on its next query, with nothing to reload. Connections: core.pg_connection."""
from __future__ import annotations

import functools
import logging
import os
import threading

import numpy as np

from keyface.data.errors import EmptyGalleryError, GalleryConflictError, GalleryError, PersonNotFoundError
from keyface.data.files import shown
from keyface.data.paths import shown_location
from keyface.recognition.core.pg_connection import (Connection, first_line, psycopg_module, vector_from_binary,
                                                    vector_literal)
from keyface.recognition.core.search import Match, first_per_person
from keyface.recognition.core.records import SCHEMA_VERSION, Enrolment, check_name, checked_vector
from keyface.recognition.core.store import take_or_check_meta, vector_ok

log = logging.getLogger(__name__)

CANDIDATES = 64  # rows the HNSW index hands over per probe; their people are then ranked exactly
EF_SEARCH = 100  # HNSW's candidate list while searching (pgvector's default is 40): recall over speed
_TABLES = ("meta", "people", "photos", "embeddings", "thumbnails")
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE photos (
    id BIGSERIAL PRIMARY KEY, person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, source BYTEA NOT NULL, box TEXT NOT NULL, keypoints TEXT NOT NULL,
    added TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (person_id, sha256));
CREATE INDEX photos_by_sha256 ON photos (sha256);
CREATE TABLE embeddings (
    photo_id BIGINT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedder TEXT NOT NULL, version TEXT NOT NULL, vector vector({dim}) NOT NULL,
    PRIMARY KEY (photo_id, embedder, version));
CREATE TABLE thumbnails (person_id BIGINT PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE, jpeg BYTEA NOT NULL);
"""
HNSW_INDEX = "CREATE INDEX IF NOT EXISTS embeddings_hnsw ON embeddings USING hnsw (vector vector_cosine_ops)"


def _on_connection(method):
    """A store method run on the store's connection (made again, and the method tried once more, after the
    server restarted): callers do not pass `conn`."""
    @functools.wraps(method)
    def on_connection(self, *args, **kwargs):
        return self.db.run(lambda conn: method(self, conn, *args, **kwargs))
    return on_connection


class PostgresStore:
    """People, their photos and embeddings for one embedder (name + model version) in a PostgreSQL
    database with pgvector; each write one transaction."""

    def __init__(self, uri: str, embedder: str | None, version: str | None, dim: int | None, create: bool = True):
        """Open (or, with create, make) the gallery in the database the URI names; with no embedder, an
        existing gallery with its own."""
        self.uri, self.path = uri.strip(), shown_location(uri)  # `path`: what messages call the gallery
        self.embedder, self.version, self.dim = embedder, version, dim
        self.db = Connection(self.uri)
        self._searches: dict[str, PgIndex] = {}
        try:
            with self.db.guarded() as conn:
                self._open(conn, create)
        except BaseException:
            self.close()
            raise

    def _open(self, conn, create: bool) -> None:
        """Check the database is a keyface gallery (or, with create, empty: then make one) and claim or check
        its embedder. Nothing is written to a database that is neither."""
        tables = _tables(conn)
        if not _claimed(conn, tables):
            if tables or not create or self.embedder is None:  # no embedder: nothing to make one for
                raise _not_a_gallery(self.path, tables)
            try:
                self._create(conn)
            except (psycopg_module().errors.DuplicateTable, psycopg_module().errors.UniqueViolation):
                log.info("another keyface made the gallery in %s at the same time; using it", self.path)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        take_or_check_meta(self, meta)

    def _create(self, conn) -> None:
        """The tables, the HNSW index and the gallery's embedder, in one transaction; refused with nothing
        made where pgvector is missing."""
        psycopg = psycopg_module()
        try:
            with conn.transaction():
                if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
                    conn.execute("CREATE EXTENSION vector")
                for statement in _SCHEMA.format(dim=int(self.dim)).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(HNSW_INDEX)
                conn.cursor().executemany("INSERT INTO meta VALUES (%s, %s)", [
                    ("schema", str(SCHEMA_VERSION)), ("embedder", self.embedder), ("version", self.version),
                    ("dim", str(self.dim))])
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFile,
                psycopg.errors.FeatureNotSupported) as exc:
            raise GalleryError(f"{self.path} has no pgvector and keyface may not add it "
                               f"({first_line(exc, self.uri)}); nothing was created: have a superuser run CREATE EXTENSION "
                               "vector in it") from None
        log.info("made a keyface gallery in %s", self.path)

    @_on_connection
    def add(self, conn, faces: list[Enrolment]) -> int:
        """Store faces in one transaction; a photo already stored for that person is skipped. Returns added."""
        added = 0
        with conn.transaction():
            for face in faces:
                person = check_name(face.person)
                owner = self._other_owner(conn, face.sha256, person)
                if owner is not None:
                    raise GalleryConflictError(f"{shown(face.source)} is already enrolled as {owner!r}")
                person_id = self._person_id(conn, person, create=True)
                row = conn.execute(
                    "INSERT INTO photos (person_id, sha256, source, box, keypoints) VALUES (%s,%s,%s,%s,%s) "
                    "ON CONFLICT (person_id, sha256) DO NOTHING RETURNING id",
                    (person_id, face.sha256, os.fsencode(face.source), *face.face_json())).fetchone()
                if row is None:
                    continue
                conn.execute("INSERT INTO embeddings VALUES (%s, %s, %s, %s, %s::vector)", (
                    row[0], person_id, self.embedder, self.version,
                    vector_literal(checked_vector(face.embedding, self.dim))))
                added += 1
        return added

    @_on_connection
    def owner_of(self, conn, sha256: str) -> str | None:
        """The person a photo (by content hash) is enrolled as, if any."""
        return self._owner(conn, sha256)

    @_on_connection
    def other_owner(self, conn, sha256: str, person: str) -> str | None:
        """Someone other than `person` this photo is already enrolled as: one photo, two names would tie."""
        return self._other_owner(conn, sha256, person)

    @staticmethod
    def _owner(conn, sha256: str) -> str | None:
        row = conn.execute("SELECT p.name FROM photos ph JOIN people p ON p.id = ph.person_id "
                           "WHERE ph.sha256 = %s LIMIT 1", (sha256,)).fetchone()
        return row[0] if row else None

    def _other_owner(self, conn, sha256: str, person: str) -> str | None:
        owner = self._owner(conn, sha256)
        return owner if owner is not None and owner != person else None

    def _person_id(self, conn, name: str, create: bool = False) -> int:
        name = check_name(name, existing=not create)
        row = conn.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            raise PersonNotFoundError(f"no person named {name!r} in {self.path}")
        # another enrolment may add them meanwhile: theirs is waited for, then taken (READ COMMITTED)
        added = conn.execute("INSERT INTO people (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING id",
                             (name,)).fetchone()
        found = added or conn.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
        if found is None:  # added by another enrolment and removed again, between our two statements
            raise GalleryConflictError(f"{name!r} was added and removed by another process meanwhile; try again")
        return found[0]

    @_on_connection
    def is_empty(self, conn) -> bool:
        """Whether no one is enrolled (one row read)."""
        return conn.execute("SELECT 1 FROM people LIMIT 1").fetchone() is None

    @_on_connection
    def people(self, conn) -> list[tuple[str, int]]:
        """(name, photo count) for everyone, by name."""
        return [(n, int(c)) for n, c in conn.execute(
            "SELECT p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name COLLATE \"C\"")]

    @_on_connection
    def rename(self, conn, old: str, new: str) -> None:
        """Rename a person (refused if the new name is taken)."""
        new = check_name(new)
        with conn.transaction():
            person_id = self._person_id(conn, old)
            if conn.execute("SELECT 1 FROM people WHERE name = %s", (new,)).fetchone():
                raise GalleryConflictError(f"{new!r} is already in the gallery")
            conn.execute("UPDATE people SET name = %s WHERE id = %s", (new, person_id))

    @_on_connection
    def remove(self, conn, name: str) -> int:
        """Remove a person with their photos and embeddings; return how many photos went."""
        with conn.transaction():
            person_id = self._person_id(conn, name)
            n = conn.execute("SELECT COUNT(*) FROM photos WHERE person_id = %s", (person_id,)).fetchone()[0]
            conn.execute("DELETE FROM people WHERE id = %s", (person_id,))
        return int(n)

    @_on_connection
    def set_thumbnail(self, conn, name: str, jpeg: bytes) -> None:
        """Keep a small face picture for a person (the first one given stays)."""
        with conn.transaction():
            conn.execute("INSERT INTO thumbnails VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (self._person_id(conn, name), jpeg))

    @_on_connection
    def thumbnail(self, conn, name: str) -> bytes:
        """A person's face picture (JPEG); PersonNotFoundError if there is none."""
        row = conn.execute("SELECT jpeg FROM thumbnails WHERE person_id = %s",
                           (self._person_id(conn, name),)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no thumbnail for {name!r}")
        return bytes(row[0])

    @_on_connection
    def matrix(self, conn) -> tuple[np.ndarray, np.ndarray]:
        """All stored embeddings (M, D) float32 and the person name of each row (for a softmax head)."""
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id "
                        "ORDER BY p.name, e.photo_id")
            rows = cur.fetchall()
        vectors = np.stack([vector_from_binary(v) for _, v in rows]) if rows else np.zeros((0, self.dim), np.float32)
        return vectors, np.array([n for n, _ in rows], dtype=object)

    def index(self, kind: str | None = None):
        """The search: pgvector's HNSW index in the database ('hnsw', the default), or every row ('exact')."""
        kind = kind or "hnsw"
        if kind not in ("hnsw", "exact"):
            raise GalleryError(f"a PostgreSQL gallery is searched by pgvector ('hnsw' or 'exact'), not {kind!r}")
        if kind not in self._searches:
            self._searches[kind] = PgIndex(self.uri, exact=kind == "exact")
        return self._searches[kind]

    def close(self) -> None:
        """Close the connections."""
        self.db.close()
        for search in self._searches.values():
            search.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PgIndex:
    """Search inside the database: for each probe the nearest CANDIDATES rows (by the HNSW index, or by
    every row when exact), their people ranked by their closest row. Thread-safe: its own connection."""

    def __init__(self, uri: str, exact: bool = False):
        self.kind = "pgvector exact" if exact else "pgvector hnsw"
        setup = ("SET enable_indexscan = off",) if exact else (f"SET hnsw.ef_search = {EF_SEARCH}",)
        self.db, self._lock = Connection(uri, setup), threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self.db.run(lambda conn: int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]))

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, the k nearest distinct people (by their closest stored row), nearest first."""
        probes = np.atleast_2d(np.asarray(probes, np.float32))
        with self._lock:
            return self.db.run(lambda conn: [self._people(conn, probe, k) for probe in probes])

    def _people(self, conn, probe: np.ndarray, k: int) -> list[Match]:
        literal = vector_literal(probe)
        rows = conn.execute(
            "SELECT p.name, c.d FROM (SELECT person_id, vector <=> %s::vector AS d FROM embeddings "
            "ORDER BY vector <=> %s::vector LIMIT %s) c JOIN people p ON p.id = c.person_id ORDER BY c.d",
            (literal, literal, max(CANDIDATES, 4 * k))).fetchall()
        return [Match(n, d) for n, d in first_per_person(rows, k).items()]

    def close(self) -> None:
        self.db.close()


def read_meta(uri: str) -> dict:
    """A PostgreSQL gallery's embedder, model version and dimension, read without changing anything ({} where
    the database holds no keyface gallery: opening it says why)."""
    db = Connection(uri)
    try:
        with db.guarded() as conn:
            if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
                return {}
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def _tables(conn) -> set[str]:
    """The names of the tables in the database's schema: a gallery's, another program's, or none."""
    return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def _claimed(conn, tables: set[str]) -> bool:
    """Whether a keyface gallery was made in the database: its meta table names an embedder."""
    return "meta" in tables and conn.execute("SELECT 1 FROM meta WHERE key = 'embedder'").fetchone() is not None


def _not_a_gallery(path: str, tables: set[str]) -> GalleryError:
    """Why a database that keyface never made a gallery in cannot be read as one: empty, or another program's."""
    if tables:
        return GalleryError(f"{path} is not a keyface gallery (it holds other tables: {', '.join(sorted(tables)[:3])}); "
                            "refusing to touch it: use an empty database")
    return EmptyGalleryError(f"no keyface gallery in {path} yet: enrol people first", path)


def holds_tables(uri: str) -> bool:
    """Whether the database holds any table in its schema: a gallery, or another program's that opening refuses."""
    db = Connection(uri)
    try:
        with db.guarded() as conn:
            return bool(_tables(conn))
    finally:
        db.close()


def check_database(uri: str) -> list[str]:
    """Every problem found in a database gallery: its tables, meta, pgvector and HNSW index, photos without
    embeddings, and each stored vector (dimension, finite, unit length). Nothing is changed."""
    db = Connection(uri, ("SET default_transaction_read_only = on",))
    try:
        with db.guarded() as conn:
            tables = _tables(conn)
            if not _claimed(conn, tables) and tables.isdisjoint(_TABLES):  # no gallery at all, not a damaged one
                raise _not_a_gallery(shown_location(uri), tables)
            missing = [t for t in _TABLES if t not in tables]
            if missing:
                return [f"not a keyface gallery: no table {', '.join(missing)}"]
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if not {"embedder", "version", "dim"} <= set(meta):
                return ["the meta table lacks the embedder, its version or the dimension"]
            return _database_problems(conn, int(meta["dim"]))
    finally:
        db.close()


def _database_problems(conn, dim: int) -> list[str]:
    problems = []
    if conn.execute("SELECT to_regclass('embeddings_hnsw')").fetchone()[0] is None:
        problems.append("the HNSW index embeddings_hnsw is missing: searches read every row")
    orphans = conn.execute("SELECT COUNT(*) FROM photos ph WHERE NOT EXISTS "
                           "(SELECT 1 FROM embeddings e WHERE e.photo_id = ph.id)").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} photo(s) have no embedding")
    bad = check_vectors(conn, dim)
    if bad:
        problems.append(f"{bad} stored embedding(s) are not finite unit vectors of dimension {dim}")
    return problems


def check_vectors(conn, dim: int) -> int:
    """How many stored embeddings are not finite unit vectors of the gallery's dimension."""
    bad = 0
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT vector FROM embeddings")
        while rows := cur.fetchmany(50_000):
            vectors = [vector_from_binary(v) for (v,) in rows]
            right = np.array([len(v) == dim for v in vectors])
            bad += int((~right).sum())
            if right.any():
                bad += int((~vector_ok(np.stack([v for v, ok in zip(vectors, right) if ok]))).sum())
    return bad
