"""A large gallery's memory-mapped vector file: made when missing, appended by an enrolment, rebuilt (never
trusted) after any other change, and searched exactly as the SQLite rows are."""
import os
import stat

import numpy as np
import pytest

from keyface.recognition.core import store as store_module
from keyface.recognition.core.search import ExactIndex, RowIndex
from keyface.recognition.core.records import Enrolment
from keyface.recognition.core.store import SQLiteStore
from keyface.recognition.core.search import VectorFile

DIM = 16


def _faces(rng, people: list[str], each: int, tag: str) -> list[Enrolment]:
    out = []
    for person in people:
        for k in range(each):
            v = rng.normal(size=DIM).astype(np.float32)
            out.append(Enrolment(person, f"{tag}-{person}-{k}", f"/photos/{tag}-{person}-{k}.jpg", (0, 0, 9, 9),
                                 np.zeros((68, 2)), v / np.linalg.norm(v)))
    return out


@pytest.fixture
def large(monkeypatch):
    monkeypatch.setattr(store_module, "VECTOR_FILE_ROWS", 10)  # "large" from 10 rows: tests stay small


def _same_answers(index, store: SQLiteStore, probes: np.ndarray) -> None:
    vectors, names = store.matrix()
    assert index.search(probes, 3) == ExactIndex(vectors, names).search(probes, 3)


def test_a_large_gallery_is_searched_from_its_vector_file_and_an_enrolment_appends_to_it(tmp_path, large):
    rng = np.random.default_rng(0)
    probes = rng.normal(size=(5, DIM)).astype(np.float32)
    path = tmp_path / "g.db"
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ada", "Ben", "Cy", "Di"], 5, "a"))
        index = store.index()
        assert isinstance(index, RowIndex) and len(index) == 20
        _same_answers(index, store, probes)
        inode = os.stat(f"{path}.vectors").st_ino
        store.add(_faces(rng, ["Ada", "Eve"], 3, "b"))  # appended in place: no rebuild
        assert os.stat(f"{path}.vectors").st_ino == inode and VectorFile(path).header()["count"] == 26
        _same_answers(store.index(), store, probes)
    assert stat.S_IMODE(os.stat(f"{path}.vectors").st_mode) == 0o600
    with SQLiteStore(path, "e", "v1", DIM) as again:  # another process opening it maps the file as it is
        assert len(again.index()) == 26 and os.stat(f"{path}.vectors").st_ino == inode
        _same_answers(again.index(), again, probes)


def test_a_vector_file_that_does_not_hold_the_gallery_content_is_rebuilt_not_trusted(tmp_path, large):
    rng = np.random.default_rng(1)
    probes = rng.normal(size=(4, DIM)).astype(np.float32)
    path = tmp_path / "g.db"
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ada", "Ben", "Cy"], 5, "a"))
        store.index()
        store.remove("Ben")  # deleted rows: the generation moves on, the file is stale
        index = store.index()
        assert len(index) == 10 and "Ben" not in {m.person for ms in index.search(probes, 3) for m in ms}
        _same_answers(index, store, probes)
        store.rename("Cy", "Cyd")  # names are looked up by person: a rename needs no new file
        assert "Cyd" in {m.person for ms in store.index().search(probes, 3) for m in ms}
    header = VectorFile(path).header()
    with open(f"{path}.vectors", "r+b") as fh:  # damage: a header for another gallery
        fh.seek(0)
        fh.write(b"keyface-vectors 1\n" + b'{"gallery_id": "x"}'.ljust(200))
    with SQLiteStore(path, "e", "v1", DIM) as store:
        _same_answers(store.index(), store, probes)
    assert VectorFile(path).header() == header


def test_a_small_gallery_has_no_vector_file(tmp_path):
    rng = np.random.default_rng(2)
    with SQLiteStore(tmp_path / "g.db", "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ada", "Ben"], 3, "a"))
        assert isinstance(store.index(), ExactIndex)
    assert not (tmp_path / "g.db.vectors").exists()


def test_a_large_gallery_is_quick_checked_once_after_each_change(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CHECK_ONCE_BYTES", 0)  # every gallery counts as large here
    checks = []
    original = SQLiteStore._quick_check
    monkeypatch.setattr(SQLiteStore, "_quick_check", lambda self: checks.append(1) or original(self))
    path, rng = tmp_path / "g.db", np.random.default_rng(3)
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ada"], 2, "a"))
    for _ in range(3):
        SQLiteStore(path, "e", "v1", DIM).close()
    assert len(checks) == 1  # checked on the first open of the written file, then trusted while unchanged
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ben"], 1, "b"))
    SQLiteStore(path, "e", "v1", DIM).close()
    assert len(checks) == 2  # written since: checked again


def test_a_damaged_vector_in_a_large_gallery_is_refused_and_leaves_nothing_behind(tmp_path, large):
    import sqlite3
    from keyface.data.errors import DamagedGalleryError
    rng, path = np.random.default_rng(4), tmp_path / "g.db"
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, ["Ada", "Ben", "Cy"], 5, "a"))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE embeddings SET vector = ? WHERE rowid = 3", (np.full(DIM, np.nan, np.float32).tobytes(),))
    conn.close()
    with SQLiteStore(path, "e", "v1", DIM) as store, pytest.raises(DamagedGalleryError, match="reindex"):
        store.index()
    assert sorted(p.name for p in tmp_path.iterdir() if "vector" in p.name and "lock" not in p.name) == []


def test_a_server_searches_a_very_large_gallery_approximately_once_built_and_keeps_it_current(tmp_path, large):
    pytest.importorskip("faiss")
    import time
    from keyface.recognition.core.approximate import FaissRows, LiveIndex
    rng, path = np.random.default_rng(5), tmp_path / "g.db"
    people = [f"p{i:03d}" for i in range(60)]
    with SQLiteStore(path, "e", "v1", DIM) as store:
        store.add(_faces(rng, people, 10, "a"))
        live = LiveIndex(min_rows=100)
        assert isinstance(live.pick(store.index()), RowIndex)  # exact while the approximate index is built
        deadline = time.time() + 30
        while live.state == "building" and time.time() < deadline:
            time.sleep(0.05)
        approximate = live.pick(store.index())
        assert isinstance(approximate, FaissRows) and live.state == "approximate"
        enrolled = _faces(rng, ["Newcomer"], 2, "b")
        store.add(enrolled)  # appended to the vector file: the approximate index is extended, not rebuilt
        assert live.pick(store.index()) is approximate and len(approximate) == 602
        assert approximate.search(enrolled[0].embedding, 1)[0][0] == ("Newcomer", pytest.approx(0.0, abs=1e-5))
        vectors, names = store.matrix()
        own = [f.embedding for f in _faces(np.random.default_rng(5), people, 10, "a")[::10]]
        expected = ExactIndex(vectors, names).search(np.array(own), 1)
        assert [m[0].person for m in approximate.search(np.array(own), 1)] == [m[0].person for m in expected]
        store.rename("Newcomer", "Newman")
        assert approximate.search(enrolled[0].embedding, 1)[0][0].person == "Newcomer"  # names come with a pick
        assert live.pick(store.index()).search(enrolled[0].embedding, 1)[0][0].person == "Newman"
        store.remove("p000")  # the vector file is rebuilt: exact again until a new approximate index is ready
        assert isinstance(live.pick(store.index()), RowIndex)
