"""A private PostgreSQL 16 with pgvector for benchmarks and tests: PyPI's `pgserver` runs one from its
wheel in a folder of ours, listening on a Unix socket only, started in about a second and stopped after.
Never a mock: the gallery code talks to it exactly as to any PostgreSQL server."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keyface.data.errors import MissingDependency

log = logging.getLogger(__name__)


class PrivatePostgres:
    """A PostgreSQL server of our own in `folder` (made there on first start): new databases on demand,
    stopped and started again at will (to test outages), stopped for good by close()."""

    def __init__(self, folder: Path):
        try:
            import pgserver
        except ImportError:
            raise MissingDependency("a private PostgreSQL needs pgserver: pip install pgserver") from None
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        folder.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(folder, cleanup_mode="stop")

    def uri(self, database: str = "postgres") -> str:
        """A libpq URI for one of its databases."""
        return self.server.get_uri(database)

    def new_database(self, prefix: str = "gallery") -> str:
        """A new, empty database; its URI."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.sql(f"CREATE DATABASE {name}")
        return self.uri(name)

    def drop_database(self, uri: str) -> None:
        """Drop a database new_database() made (its connections are cut)."""
        from psycopg.conninfo import conninfo_to_dict
        self.sql(f"DROP DATABASE {conninfo_to_dict(uri)['dbname']} WITH (FORCE)")

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the server's superuser; the rows it returns."""
        import psycopg
        with psycopg.connect(self.uri(database), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        """Stop the server now (fast shutdown: sessions are cut, committed work is kept)."""
        from pgserver._commands import pg_ctl
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        """Start it again after stop(), on the same socket."""
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server for good (pgserver's own clean-up leaves it running when it counts other users)."""
        self.server.cleanup()
        if self._running():
            self.stop()

    def _running(self) -> bool:
        from pgserver.utils import PostmasterInfo
        info = PostmasterInfo.read_from_pgdata(Path(self.server.pgdata))
        return info is not None and info.is_running()

    def __enter__(self) -> "PrivatePostgres":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def private_postgres_if(wanted: bool, folder: Path) -> Iterator[PrivatePostgres | None]:
    """A PrivatePostgres in `folder` for the block, stopped after it, where `wanted`; else None."""
    if not wanted:
        yield None
        return
    with PrivatePostgres(folder) as postgres:
        yield postgres
