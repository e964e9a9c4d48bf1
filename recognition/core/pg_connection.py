"""Talking to PostgreSQL for a gallery: connections that report an outage in one line and are made again
after the server went away, and pgvector's text and binary forms of a vector. psycopg 3 is imported on
first use (`pip install 'keyface[postgres]'`)."""
from __future__ import annotations

import logging
import re
import struct
import threading
from contextlib import contextmanager

import numpy as np

from keyface.data.errors import GalleryError, GalleryUnavailableError, MissingDependency
from keyface.data.paths import masked, shown_location

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds: an unreachable server is reported, not waited on


def psycopg_module():
    try:
        import psycopg
    except ImportError:
        raise MissingDependency("PostgreSQL galleries need psycopg 3: pip install 'keyface[postgres]'") from None
    return psycopg


def connect(uri: str):
    """An autocommit connection; a URI that does not parse or a server that cannot be reached or refuses
    us is one line, and nothing is created."""
    psycopg = psycopg_module()
    from psycopg.conninfo import conninfo_to_dict
    scheme, rest = uri.strip().split("://", 1)
    uri = f"{scheme.lower()}://{rest}"  # a scheme is any case (RFC 3986); libpq reads it in lower case only
    try:
        conninfo_to_dict(uri)
    except psycopg.ProgrammingError as exc:
        raise GalleryError(f"not a PostgreSQL URI ({first_line(exc, uri)}): {shown_location(uri)}") from None
    try:
        return psycopg.connect(uri, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.OperationalError as exc:
        text = first_line(exc, uri)
        if "password" in text or "authentication" in text or "does not exist" in text or "permission" in text:
            raise GalleryError(f"PostgreSQL refused {shown_location(uri)}: {text}") from None
        raise GalleryUnavailableError(f"cannot reach the PostgreSQL server of {shown_location(uri)}: {text}") from None


def first_line(exc: Exception, uri: str | None = None) -> str:
    """A database error as one line: psycopg's parts joined, its 'connection failed' and FATAL/ERROR tags gone,
    and the passwords of `uri` masked wherever the driver quotes them."""
    parts = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(parts).removeprefix("connection failed: ").removeprefix("connection is bad: ")
    return masked(re.sub(r"\b(FATAL|ERROR):\s+", "", text), uri or "")[:300]


class Connection:
    """One connection, made again after the server went away: each use either works or raises
    GalleryUnavailableError (one line), and the next use tries a fresh connection."""

    def __init__(self, uri: str, setup: tuple[str, ...] = ()):
        self.uri, self.setup, self._conn = uri, setup, None
        # threads sharing a gallery take turns: a transaction must never take in another thread's statements
        self._turn = threading.RLock()

    def get(self):
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.uri)
            for statement in self.setup:
                self._conn.execute(statement)
        return self._conn

    def run(self, fn):
        """fn(connection)'s result. A connection the server dropped (a restart) is made again and fn tried once
        more; a server that cannot be reached is GalleryUnavailableError (one line)."""
        psycopg = psycopg_module()
        with self._turn:  # the whole of it: no thread drops or remakes the connection another is using
            for attempt in (1, 2):
                reused = self._conn is not None and not self._conn.closed and not self._conn.broken
                try:
                    return fn(self.get())
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise self._not_allowed(exc) from None
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self.close()
                    if attempt == 2 or not reused:
                        raise self._lost(exc) from None
                    log.info("PostgreSQL connection lost (%s); connecting again", first_line(exc, self.uri))

    @contextmanager
    def guarded(self):
        """The connection, for work that must not be repeated (a bulk copy): an outage is
        GalleryUnavailableError and the connection is dropped."""
        psycopg = psycopg_module()
        with self._turn:
            try:
                yield self.get()
            except psycopg.errors.InsufficientPrivilege as exc:
                raise self._not_allowed(exc) from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.close()
                raise self._lost(exc) from None

    def _lost(self, exc: Exception) -> GalleryUnavailableError:
        return GalleryUnavailableError(f"lost the PostgreSQL server of {shown_location(self.uri)}: "
                                       f"{first_line(exc, self.uri)}; try again")

    def _not_allowed(self, exc: Exception) -> GalleryError:
        return GalleryError(f"the PostgreSQL role of {shown_location(self.uri)} may not do this "
                            f"({first_line(exc, self.uri)}): grant it SELECT, INSERT, UPDATE, DELETE on the gallery's "
                            "tables and USAGE on their sequences (README: PostgreSQL); nothing was changed")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a connection already lost has nothing left to close
                pass
            self._conn = None


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of one vector."""
    return "[" + ",".join(f"{float(x):.9g}" for x in np.asarray(vector, np.float32).reshape(-1)) + "]"


def vector_from_binary(data: bytes) -> np.ndarray:
    """One vector from pgvector's binary form: dimension (int16), unused (int16), big-endian float32s."""
    (dim,) = struct.unpack_from(">H", data)
    return np.frombuffer(data, ">f4", count=dim, offset=4).astype(np.float32)


def vector_dumper(conn) -> type:
    """A bytes type that `conn` writes as pgvector's binary form (for binary COPY): `vector_type(array)`
    makes a value, `vector_type.oid` names the column type."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo
    oid = TypeInfo.fetch(conn, "vector").oid

    class VectorBytes(bytes):
        def __new__(cls, vector):
            v = np.asarray(vector, np.float32).reshape(-1)
            return super().__new__(cls, struct.pack(">HH", len(v), 0) + v.astype(">f4").tobytes())

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj):
            return obj
    VectorDumper.oid = oid
    conn.adapters.register_dumper(VectorBytes, VectorDumper)
    VectorBytes.oid = oid
    return VectorBytes
