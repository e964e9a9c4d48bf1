"""Galleries in PostgreSQL, against a real private PostgreSQL 16 with pgvector (PyPI pgserver), never a mock:
the SQLite store's rules, search in the database, two openers seeing each other's changes, migrate both ways
checked, check, bad locations refused with nothing changed, an outage under `keyface serve` (503, then
recovery, nothing acknowledged lost) and a client killed inside its enrolment."""
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgserver")
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from keyface.data.errors import (GalleryConflictError, GalleryError, GalleryUnavailableError,  # noqa: E402
                                 OtherModelError)
from keyface.recognition.core.pg_store import PostgresStore  # noqa: E402
from keyface.recognition.core.search import ExactIndex  # noqa: E402
from keyface.recognition.core.records import Enrolment
from keyface.recognition.core.store import SQLiteStore  # noqa: E402
from keyface.recognition.upkeep import migrate  # noqa: E402

DIM = 16
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """One private server for this module's tests (a fresh database per test), stopped at the end."""
    from keyface.recognition.evaluation.private_postgres import PrivatePostgres
    try:
        server = PrivatePostgres(tmp_path_factory.mktemp("pg") / "data")
    except Exception as exc:  # e.g. no way to run a server here: say why, do not fail the whole run
        pytest.skip(f"a private PostgreSQL could not start: {exc}")
    yield server
    server.close()


@pytest.fixture
def uri(postgres) -> str:
    return postgres.new_database()


def faces(rng, people: list[str], each: int, tag: str = "a") -> list[Enrolment]:
    out = []
    for person in people:
        for k in range(each):
            v = rng.normal(size=DIM).astype(np.float32)
            out.append(Enrolment(person, f"{tag}-{person}-{k}", f"/photos/{tag}-{person}-{k}.jpg", (1, 2, 30, 40),
                                 np.full((68, 2), 5.0), v / np.linalg.norm(v)))
    return out


def test_one_database_gallery_serves_many_threads_as_a_file_does(uri):
    from tests.test_gallery import shared_by_threads

    def face(person: str, sha: str, seed: int) -> Enrolment:
        v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
        return Enrolment(person, sha, f"/photos/{sha}.jpg", (1, 2, 30, 40), np.zeros((68, 2)), v / np.linalg.norm(v))
    with PostgresStore(uri, "e", "v1", DIM) as store:
        shared_by_threads(store, face)


def test_a_store_opened_without_an_embedder_takes_the_gallerys_own(uri, tmp_path):
    for location in (uri, tmp_path / "g.db"):
        with pytest.raises(GalleryError, match="no keyface gallery|enrol people first"):
            SQLiteStore(location, None, None, None, create=False) if isinstance(location, Path) else \
                PostgresStore(location, None, None, None, create=False)
        opener = PostgresStore if isinstance(location, str) else SQLiteStore
        with opener(location, "e", "v1", DIM) as store:
            store.add(faces(np.random.default_rng(0), ["Ada"], 2))
        with opener(location, None, None, None, create=False) as store:
            assert (store.embedder, store.version, store.dim, store.people()) == ("e", "v1", DIM, [("Ada", 2)])
        import keyface
        with keyface.Gallery(location, create=False) as gallery:  # no model loads for a listing
            assert gallery.embedder == "e" and gallery.people() == {"Ada": 2}


def test_a_database_gallery_waiting_to_be_made_sees_one_made_since_by_another_opener(uri):
    import keyface
    with keyface.Gallery(uri) as waiting:  # a server started before anyone enrolled
        assert waiting.people() == {} and waiting.is_empty()
        with PostgresStore(uri, "e", "v1", DIM) as other:  # `keyface enroll` elsewhere
            other.add(faces(np.random.default_rng(0), ["Ada"], 2))
        assert waiting.people() == {"Ada": 2} and not waiting.is_empty() and waiting.embedder == "e"


def test_the_store_keeps_the_sqlite_rules_and_searches_like_exact_search(uri):
    rng = np.random.default_rng(0)
    probes = rng.normal(size=(6, DIM)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)  # unit, as every embedder gives them
    with PostgresStore(uri, "e", "v1", DIM) as store:
        assert store.is_empty()
        assert store.add(faces(rng, ["Ada", "Ben", "Cy"], 4)) == 12
        assert store.add(faces(np.random.default_rng(0), ["Ada"], 4)) == 0  # the same photos again: skipped
        assert store.people() == [("Ada", 4), ("Ben", 4), ("Cy", 4)]
        with pytest.raises(GalleryConflictError):  # one photo, two names
            store.add([Enrolment("Di", "a-Ada-0", "/x.jpg", (0, 0, 1, 1), np.zeros((68, 2)), faces(rng, ["x"], 1)[0].embedding)])
        with pytest.raises(GalleryError):
            store.add(faces(rng, ["unknown"], 1))
        vectors, names = store.matrix()
        expected = ExactIndex(vectors, names).search(probes, 3)
        for kind in ("hnsw", "exact"):
            found = store.index(kind).search(probes, 3)
            assert [[m.person for m in ms] for ms in found] == [[m.person for m in ms] for ms in expected]
            assert np.allclose([[m.distance for m in ms] for ms in found],
                               [[m.distance for m in ms] for ms in expected], atol=1e-5)
        store.rename("Cy", "Cyd")
        assert store.remove("Ben") == 4 and [n for n, _ in store.people()] == ["Ada", "Cyd"]
        store.set_thumbnail("Ada", b"jpeg-1")
        store.set_thumbnail("Ada", b"jpeg-2")
        assert store.thumbnail("Ada") == b"jpeg-1"
    with pytest.raises(OtherModelError):
        PostgresStore(uri, "e", "v2", DIM)


def test_two_openers_of_one_database_see_each_others_changes_at_once(uri):
    rng = np.random.default_rng(1)
    with PostgresStore(uri, "e", "v1", DIM) as one, PostgresStore(uri, "e", "v1", DIM) as two:
        one.add(faces(rng, ["Ada", "Ben"], 3))
        index = two.index()  # kept, as a server keeps it
        newcomer = faces(rng, ["Eve"], 2, "b")
        one.add(newcomer)
        assert index.search(newcomer[0].embedding, 1)[0][0].person == "Eve"
        one.remove("Eve")
        assert "Eve" not in {m.person for m in index.search(newcomer[0].embedding, 3)[0]}


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrate_copies_both_ways_checked_and_leaves_the_source_alone(uri, tmp_path):
    rng = np.random.default_rng(2)
    source = tmp_path / "g.db"
    with SQLiteStore(source, "e", "v1", DIM) as store:
        store.add(faces(rng, ["Ada", "Bén", "Cy"], 5))
        store.set_thumbnail("Ada", b"jpeg")
    before = _file_digest(source)
    counts = migrate(source, uri)
    assert (counts.people, counts.photos, counts.embeddings, counts.thumbnails) == (3, 15, 15, 1)
    assert _file_digest(source) == before
    back = tmp_path / "back.db"
    migrate(uri, back)
    with SQLiteStore(source, "e", "v1", DIM) as a, SQLiteStore(back, "e", "v1", DIM) as b:
        (va, na), (vb, nb) = a.matrix(), b.matrix()
        assert np.array_equal(va, vb) and list(na) == list(nb) and b.thumbnail("Ada") == b"jpeg"
    with pytest.raises(GalleryError, match="already holds people"):
        migrate(source, uri)
    with PostgresStore(uri, "e", "v1", DIM) as store:  # the refused copy added nothing
        assert sum(n for _, n in store.people()) == 15


def test_bad_locations_are_one_line_and_change_nothing(postgres, tmp_path):
    with pytest.raises(GalleryError, match="not a PostgreSQL URI"):
        PostgresStore("postgresql://[oops", "e", "v1", DIM)
    with pytest.raises(GalleryUnavailableError):
        PostgresStore("postgresql://nobody@/x?host=/nonexistent-socket-dir", "e", "v1", DIM)
    other = postgres.new_database("shop")
    database = conninfo_to_dict(other)["dbname"]
    postgres.sql("CREATE TABLE orders (id int)", database)
    with pytest.raises(GalleryError, match="not a keyface gallery"):
        PostgresStore(other, "e", "v1", DIM)
    import keyface
    with pytest.raises(GalleryError, match="not a keyface gallery"):  # the API said {} people, then "empty"
        keyface.Gallery(other)
    for command in ("check", "people"):  # not a damaged gallery (exit 1): none at all, as every command says
        run = subprocess.run([sys.executable, "-m", "keyface", command, "--gallery", other], capture_output=True,
                             text=True, cwd=ROOT)
        assert run.returncode == 2 and "is not a keyface gallery (it holds other tables: orders)" in run.stderr
    empty = postgres.new_database("nothing_yet")
    run = subprocess.run([sys.executable, "-m", "keyface", "check", "--gallery", empty], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 2 and "no keyface gallery in" in run.stderr and "enrol people first" in run.stderr
    tables = [r[0] for r in postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname='public'", database)]
    assert tables == ["orders"]
    scheme, rest = other.split("://", 1)  # a URI scheme is any case; libpq reads only lower case
    with pytest.raises(GalleryError, match="not a keyface gallery"):
        PostgresStore(f"{scheme.upper()}://{rest}", "e", "v1", DIM)


def test_a_database_without_pgvector_that_keyface_may_not_add_is_refused_with_nothing_made(postgres):
    postgres.sql("DO $$ BEGIN CREATE ROLE kf_plain LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    postgres.sql("CREATE DATABASE plain_db OWNER kf_plain")
    uri = postgres.uri("plain_db").replace("postgres:@", "kf_plain@").replace("postgres@", "kf_plain@")
    with pytest.raises(GalleryError, match="have a superuser run CREATE EXTENSION vector"):
        PostgresStore(uri, "e", "v1", DIM)
    assert postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname='public'", "plain_db") == []


def test_a_refused_password_is_one_line(postgres):
    postgres.sql("DO $$ BEGIN CREATE ROLE kf_pw LOGIN PASSWORD 'right'; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    hba = Path(postgres.server.pgdata) / "pg_hba.conf"
    hba.write_text("local all kf_pw scram-sha-256\n" + hba.read_text())
    postgres.sql("SELECT pg_reload_conf()")
    uri = postgres.uri().replace("postgres:@", "kf_pw:wrong@").replace("postgres@", "kf_pw:wrong@")
    with pytest.raises(GalleryError, match="password authentication failed") as caught:
        PostgresStore(uri, "e", "v1", DIM)
    assert "wrong" not in str(caught.value) and "\n" not in str(caught.value)
    plain = postgres.uri().replace("postgres:@", "kf_pw@").replace("postgres@", "kf_pw@")
    in_query = plain + ("&" if "?" in plain else "?") + "password=Leak1"  # libpq's other place for it
    with pytest.raises(GalleryError, match="password authentication failed") as caught:
        PostgresStore(in_query, "e", "v1", DIM)
    assert "Leak1" not in str(caught.value) and "password=***" in str(caught.value)


def test_enrolments_of_the_same_new_people_at_once_all_land(uri):
    from tests.test_gallery_faults import at_once
    stores = [PostgresStore(uri, "e", "v1", DIM) for _ in range(4)]

    def enrol(w):
        for p in range(10):
            stores[w].add(faces(np.random.default_rng(100 * w + p), [f"new {p}"], 1, tag=f"w{w}"))
    errors = at_once(enrol, len(stores))
    assert errors == [] and dict(stores[0].people()) == {f"new {p}": 4 for p in range(10)}
    for store in stores:
        store.close()


def test_a_role_that_may_only_read_is_told_what_to_grant(postgres, uri):
    with PostgresStore(uri, "e", "v1", DIM) as store:
        store.add(faces(np.random.default_rng(0), ["Ada"], 2))
    database = conninfo_to_dict(uri)["dbname"]
    postgres.sql("DO $$ BEGIN CREATE ROLE kf_ro LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    postgres.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO kf_ro", database)
    reader = uri.replace("postgres:@", "kf_ro@").replace("postgres@", "kf_ro@")
    with PostgresStore(reader, "e", "v1", DIM, create=False) as store:
        assert dict(store.people()) == {"Ada": 2}  # reading is all it may do
        with pytest.raises(GalleryError, match="may not do this .*permission denied.* grant it SELECT, INSERT"):
            store.add(faces(np.random.default_rng(1), ["Ben"], 1))
        with pytest.raises(GalleryError, match="may not do this"):
            store.rename("Ada", "Ada Lovelace")
        assert dict(store.people()) == {"Ada": 2}


def test_a_client_killed_inside_its_enrolment_leaves_no_half_person(uri, tmp_path):
    signal_file = tmp_path / "inside"
    child = textwrap.dedent(f"""
        import time, numpy as np
        from keyface.recognition.core import pg_store
        from keyface.recognition.core.records import Enrolment
        seen = []
        real = pg_store.check_name
        def slow(name, **how):  # inside the transaction: say so after 10 faces, then crawl
            seen.append(name)
            if len(seen) == 10:
                open({str(signal_file)!r}, "w").close()
            time.sleep(0.05)
            return real(name, **how)
        pg_store.check_name = slow
        rng = np.random.default_rng(0)
        rows = [Enrolment("Half", f"h{{k}}", f"/h{{k}}.jpg", (0, 0, 9, 9), np.zeros((68, 2)),
                          (lambda v: v / np.linalg.norm(v))(rng.normal(size={DIM}).astype(np.float32))) for k in range(200)]
        with pg_store.PostgresStore({uri!r}, "e", "v1", {DIM}) as store:
            store.add(rows)
    """)
    with PostgresStore(uri, "e", "v1", DIM) as store:  # made first, so the child only enrols
        store.add(faces(np.random.default_rng(3), ["Whole"], 2))
    process = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT)
    deadline = time.time() + 60
    while not signal_file.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert signal_file.exists(), "the child never got inside its enrolment"
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # the server notices the dead client and rolls its transaction back
    with PostgresStore(uri, "e", "v1", DIM) as store:
        assert store.people() == [("Whole", 2)]


def test_check_and_the_cli_work_on_a_database(uri, tmp_path):
    rng = np.random.default_rng(4)
    with PostgresStore(uri, "e", "v1", DIM) as store:
        store.add(faces(rng, ["Ada"], 3))
    env = {**os.environ, "KEYFACE_GALLERY": uri}
    run = subprocess.run([sys.executable, "-m", "keyface", "check"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip().endswith(": ok"), run.stdout + run.stderr
    run = subprocess.run([sys.executable, "-m", "keyface", "people", "--json"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert run.returncode == 0 and '"Ada"' in run.stdout
    run = subprocess.run([sys.executable, "-m", "keyface", "migrate", uri, uri], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "same gallery" in run.stderr
    bad = uri.replace("?", "?bogus=1&")
    run = subprocess.run([sys.executable, "-m", "keyface", "people", "--gallery", bad], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "not a PostgreSQL URI" in run.stderr


def test_serve_under_load_answers_503_while_postgresql_is_down_and_recovers_by_itself(postgres, uri):
    """Clients keep identifying while PostgreSQL stops and starts again: every answer is a 200 or a one-line
    503, the requests sent once it is back are all answered, and every acknowledged enrolment is there."""
    import threading
    httpx = pytest.importorskip("httpx")
    from keyface.recognition.server.app import build_app
    from tests.test_serve import start
    demo, token = ROOT / "recognition" / "demo", "t" * 32
    auth = {"Authorization": f"Bearer {token}"}
    server, thread, url = start(build_app("dlib-resnet", "blazeface", None, uri, token, False, 3_000_000))
    probe = demo / "probes" / "Salma_Hayek_0006.jpg"
    answers, stop, back = [], threading.Event(), []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                sent = time.monotonic()
                r = http.post("/api/identify", files={"photo": (probe.name, probe.read_bytes(), "image/jpeg")})
                answers.append((sent, r.status_code, r.json()))
    try:
        with httpx.Client(base_url=url, timeout=60, headers=auth) as http:
            first = _enrol(http, demo, "Salma Hayek")
            clients = [threading.Thread(target=client) for _ in range(3)]
            for c in clients:
                c.start()
            time.sleep(1.0)
            postgres.stop()
            try:
                refused = _enrol(http, demo, "Tom Cruise")
                time.sleep(1.0)
            finally:
                postgres.start()
            back.append(time.monotonic())
            time.sleep(2.0)
            stop.set()
            for c in clients:
                c.join(60)
            later = _enrol(http, demo, "Tom Cruise")
            people = http.get("/api/people").json()
    finally:
        server.should_exit = True
        thread.join(30)
    assert {status for _, status, _ in answers} <= {200, 503} and any(status == 503 for _, status, _ in answers)
    assert all(set(body) == {"error"} and "\n" not in body["error"] for _, status, body in answers if status == 503)
    after = [(status, body) for sent, status, body in answers if sent > back[0]]
    assert after and all(status == 200 and body["faces"][0]["name"] == "Salma Hayek" for status, body in after)
    assert refused.status_code == 503 and first.status_code == later.status_code == 201
    assert {p["name"]: p["photos"] for p in people} == {"Salma Hayek": first.json()["added"],
                                                        "Tom Cruise": later.json()["added"]}


def _enrol(http, demo: Path, person: str):
    photos = sorted((demo / "gallery" / person).glob("*.jpg"))
    return http.post("/api/people", data={"name": person},
                     files=[("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos])


def test_reindex_replaces_a_database_gallery_whole_in_one_transaction(uri, tmp_path):
    from keyface.recognition.upkeep import check_gallery, replace_gallery
    rng = np.random.default_rng(5)
    with PostgresStore(uri, "old", "v1", DIM) as store:
        store.add(faces(rng, ["Ada", "Ben"], 3))
    scratch = tmp_path / "new.db"
    with SQLiteStore(scratch, "new", "v2", 8) as store:  # another embedder, another dimension
        v = rng.normal(size=(2, 8)).astype(np.float32)
        store.add([Enrolment(n, f"s-{n}", f"/{n}.jpg", (0, 0, 9, 9), np.zeros((68, 2)), x / np.linalg.norm(x))
                   for n, x in zip(["Ada", "Cy"], v)])
    replace_gallery(uri, scratch)
    with pytest.raises(OtherModelError):
        PostgresStore(uri, "old", "v1", DIM)
    with PostgresStore(uri, "new", "v2", 8) as store:
        assert store.people() == [("Ada", 1), ("Cy", 1)]
        assert store.index().search(v[1] / np.linalg.norm(v[1]), 1)[0][0].person == "Cy"
    assert check_gallery(uri) == []
