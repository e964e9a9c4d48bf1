"""Losing nothing: gallery rewrites killed at random points, a reader during a rewrite, damaged files,
hostile names and paths. After every case the gallery (or its backup) passes the check, complete."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keyface.recognition.core.records import Enrolment, check_name
from keyface.recognition.core.store import SQLiteStore
from keyface.data.errors import DamagedGalleryError, GalleryError
from keyface.recognition.core.gallery_check import check_gallery, read_meta, read_photos, rewrite

DIM = 8
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def face(person: str, sha: str, seed: int, source: str | None = None) -> Enrolment:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return Enrolment(person, sha, source or f"/photos/{sha}.jpg", (1, 2, 30, 40), np.zeros((5, 2)), v / np.linalg.norm(v))


def make_gallery(path, people: int = 30, photos: int = 4) -> set:
    g = SQLiteStore(path, "toy", "v1", DIM)
    for p in range(people):
        g.add([face(f"person {p}", f"{p}-{k}", p * 10 + k) for k in range(photos)])
    g.close()
    return {(f"person {p}", f"{p}-{k}") for p in range(people) for k in range(photos)}


def stored(path) -> set:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT p.name, ph.sha256 FROM photos ph JOIN people p ON p.id = ph.person_id"))
    finally:
        conn.close()


# A rewrite as `keyface reindex` does it, with a toy re-embedding that sleeps so a kill lands inside it.
_REWRITER = r"""
import sys, time, numpy as np

from pathlib import Path
from keyface.recognition.core.gallery_check import read_photos, rewrite
from keyface.recognition.core.records import Enrolment
from keyface.recognition.core.store import SQLiteStore


def build(source, scratch):
    g = SQLiteStore(scratch, "toy", "v2", 8)
    for i, (person, sha, src) in enumerate(read_photos(source)):
        v = np.random.default_rng(i).normal(size=8).astype(np.float32)
        g.add([Enrolment(person, sha, src, (0, 0, 1, 1), np.zeros((5, 2)), v / np.linalg.norm(v))])
        time.sleep(0.005)
    g.close()
rewrite(Path(sys.argv[1]), build)
print("done", flush=True)
"""


def _rewriter(path):
    return subprocess.Popen([sys.executable, "-c", _REWRITER.format(repo=REPO), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("seed", range(4))
def test_a_rewrite_killed_at_a_random_point_loses_nothing(tmp_path, seed):
    path = tmp_path / "g.db"
    committed = make_gallery(path)
    proc = _rewriter(path)
    _rewrite_under_way(path, proc)  # the backup is made; the new gallery is being built
    time.sleep(np.random.default_rng(seed).uniform(0.0, 0.5))
    assert proc.poll() is None  # killed mid-rewrite, not after it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert check_gallery(path) == [] and stored(path) == committed  # old or new, whole
    backup = tmp_path / "g.db.bak"  # made once the new gallery is built, just before it replaces the old
    assert not backup.exists() or (check_gallery(backup) == [] and stored(backup) == committed)
    assert backup.exists() or _version(path) == "v1"  # replaced: only with the old one kept beside it


def _version(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))["version"]
    finally:
        conn.close()


def test_a_rewrite_that_fails_leaves_no_backup_and_keeps_the_earlier_one(tmp_path):
    path = tmp_path / "g.db"
    committed = make_gallery(path, people=2)
    (tmp_path / "g.db.bak").write_bytes(b"an earlier backup")

    def fails(source, scratch):  # half way: the scratch gallery is begun
        sqlite3.connect(scratch).execute("CREATE TABLE half (x)").connection.commit()
        raise GalleryError("a photo is missing")
    with pytest.raises(GalleryError, match="a photo is missing"):
        rewrite(path, fails)
    assert stored(path) == committed and (tmp_path / "g.db.bak").read_bytes() == b"an earlier backup"
    assert not (tmp_path / "g.db.bak.1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db", "g.db.bak"]  # no half-written g.db.rewrite


def test_an_unkilled_rewrite_replaces_the_gallery_and_keeps_a_checked_backup(tmp_path):
    path = tmp_path / "g.db"
    committed = make_gallery(path, people=5)
    proc = _rewriter(path)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    conn = sqlite3.connect(path)
    assert dict(conn.execute("SELECT key, value FROM meta"))["version"] == "v2"
    conn.close()
    assert stored(path) == committed == stored(tmp_path / "g.db.bak")
    assert check_gallery(tmp_path / "g.db.bak") == [] and not (tmp_path / "g.db.rewrite").exists()
    assert oct(os.stat(tmp_path / "g.db.bak").st_mode & 0o777) == "0o600"


def test_a_rewrite_is_refused_while_another_process_has_the_gallery_open(tmp_path):
    path = tmp_path / "g.db"
    committed = make_gallery(path, people=3)
    reader = SQLiteStore(path, "toy", "v1", DIM, create=False)  # like an identify in progress
    with pytest.raises(GalleryError, match="in use by another keyface process"):
        rewrite(path, lambda source, scratch: None)
    assert len(reader.matrix()[0]) == 12
    reader.close()
    assert stored(path) == committed and not (tmp_path / "g.db.bak").exists()


def _rewrite_under_way(path: Path, proc) -> None:
    """Wait until the rewriter holds the gallery and is building the new one (its scratch file exists)."""
    scratch, deadline = path.with_name(path.name + ".rewrite"), time.monotonic() + 60
    while not scratch.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)


def test_a_reader_that_starts_during_a_rewrite_waits_then_sees_the_new_gallery(tmp_path, caplog):
    path = tmp_path / "g.db"
    make_gallery(path)
    proc = _rewriter(path)
    _rewrite_under_way(path, proc)
    # the rewrite holds the lock: opening waits for it rather than reading the old gallery (a v1 gallery
    # would be refused here as made by another model) or half of the new one
    with caplog.at_level("INFO", logger="keyface.recognition.core.store"):
        reader = SQLiteStore(path, "toy", "v2", DIM, create=False)
    waited_for_the_whole_rewrite = not path.with_name(path.name + ".rewrite").exists()
    assert waited_for_the_whole_rewrite and len(reader.matrix()[0]) == 120
    assert caplog.text.count("another keyface process is rewriting it (reindex); up to 30 s") == 1  # said once
    assert proc.wait(timeout=60) == 0
    reader.close()


@pytest.mark.parametrize("seed", range(3))
def test_an_enrolment_killed_at_a_random_point_keeps_every_commit(tmp_path, seed):
    path = tmp_path / "g.db"
    SQLiteStore(path, "toy", "v1", DIM).close()
    script = ("import sys, numpy as np\n"
              "from keyface.recognition.core.records import Enrolment\n"
              "from keyface.recognition.core.store import SQLiteStore\n"
              "g = SQLiteStore(sys.argv[1], 'toy', 'v1', 8)\n"
              "for b in range(100000):\n"
              "    v = np.ones(8, np.float32) / np.sqrt(8)\n"
              "    g.add([Enrolment(f'p{b}', f'{b}-{k}', 'x', (0, 0, 1, 1), np.zeros((5, 2)), v) for k in range(20)])\n"
              "    print(b, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # the first batch is in: the kill lands while batches are being written
    time.sleep(np.random.default_rng(seed).uniform(0.2, 1.0))
    proc.send_signal(signal.SIGKILL)
    acknowledged = len((first + proc.stdout.read()).split())
    proc.wait()
    photos = len(stored(path))
    assert acknowledged >= 1 and check_gallery(path) == [] and photos % 20 == 0 and photos // 20 >= acknowledged


def test_garbage_in_the_middle_of_the_file_is_refused_before_any_write(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=200)
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        fh.write(os.urandom(4096))
    assert check_gallery(path)
    with pytest.raises(GalleryError, match="damaged.*check the gallery for details"):
        SQLiteStore(path, "toy", "v1", DIM)


def test_a_damaged_page_is_named_by_its_problem_not_by_sqlites_heading(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=200)
    with open(path, "r+b") as fh:  # the header of the fourth page, a b-tree page of the schema's
        fh.seek(4096 * 3)
        fh.write(b"\xff" * 8)
    with pytest.raises(DamagedGalleryError) as refused:
        SQLiteStore(path, "toy", "v1", DIM)
    said = str(refused.value)
    assert "***" not in said and "Page " in said and refused.value.repair == "check", said
    assert not any(p.startswith("*** in database") for p in check_gallery(path))


def test_a_gallery_cut_short_is_damaged_with_its_repair_and_a_foreign_file_is_not_a_gallery(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=200)
    path.write_bytes(path.read_bytes()[:os.path.getsize(path) // 2])
    with pytest.raises(DamagedGalleryError, match="g.db is damaged .*restore it from a backup") as refused:
        SQLiteStore(path, "toy", "v1", DIM)
    assert refused.value.repair == "check"
    with pytest.raises(DamagedGalleryError):
        read_meta(path)
    other = tmp_path / "notes.db"
    other.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(GalleryError, match="not a keyface gallery") as refused:
        SQLiteStore(other, "toy", "v1", DIM)
    assert not isinstance(refused.value, DamagedGalleryError)


def test_a_sound_gallery_sqlite_cannot_use_for_another_reason_is_not_called_damaged(tmp_path):
    from keyface.recognition.core.damage import unreadable
    path = tmp_path / "g.db"
    make_gallery(path, people=3)
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:  # SQLITE_READONLY, as a read-only folder gives
        conn.execute("CREATE TABLE x (a)")
    conn.close()
    said = unreadable(path, refused.value)
    assert not isinstance(said, DamagedGalleryError) and str(said).startswith(f"cannot read the gallery {path}")


def test_checking_and_reading_a_gallery_leave_no_sqlite_files_beside_it(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db"]
    assert check_gallery(path) == [] and read_meta(path)["embedder"] == "toy" and len(read_photos(path)) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db"]  # a read-only connection left -wal and -shm


def test_a_non_finite_stored_vector_is_caught_by_search_and_by_the_check(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=3)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE embeddings SET vector = ? WHERE rowid = 2", (np.full(DIM, np.nan, np.float32).tobytes(),))
        conn.execute("UPDATE embeddings SET vector = ? WHERE rowid = 5", (np.full(DIM, 1e30, np.float32).tobytes(),))
    conn.close()
    assert any("2 stored embedding(s)" in p for p in check_gallery(path))
    with pytest.raises(GalleryError, match="2 damaged embedding.*reindex the gallery"):
        SQLiteStore(path, "toy", "v1", DIM).matrix()
    # the repair named is taken: a rewrite that embeds every photo anew goes ahead over the damaged vectors
    with pytest.raises(DamagedGalleryError, match="2 stored embedding"):
        rewrite(path, lambda source, scratch: make_gallery(scratch, people=3))
    assert rewrite(path, lambda source, scratch: make_gallery(scratch, people=3), replaces_vectors=True)
    assert check_gallery(path) == [] and len(SQLiteStore(path, "toy", "v1", DIM).matrix()[0]) == 12


@pytest.mark.parametrize("name", ["Jose\u200b", "a\u202eb", "x\x85y", "bad\udcffname", "line\u2028two"])
def test_invisible_and_control_characters_are_refused(name):
    with pytest.raises(GalleryError, match="invalid person name"):
        check_name(name)


def test_names_that_look_alike_are_one_person(tmp_path):
    nfc, nfd = "Jos\u00e9", "Jose\u0301"
    assert check_name(nfd) == check_name(nfc) == nfc
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    g.add([face(nfc, "aa", 0)])
    g.add([face(nfd, "bb", 1)])
    assert g.people() == [(nfc, 2)]
    g.rename(" " + nfd + " ", "Ana")  # remove and rename apply the same rule as enrolment
    assert g.remove(" Ana ") == 2


def test_one_photo_under_two_names_is_refused_naming_the_first(tmp_path):
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    g.add([face("Ada", "same", 0)])
    with pytest.raises(GalleryError, match="already enrolled as 'Ada'"):
        g.add([face("Bob", "same", 0)])
    assert g.people() == [("Ada", 1)]


def test_a_non_utf8_photo_path_is_stored_losslessly(tmp_path):
    from keyface.recognition.core.gallery_check import read_photos
    odd = os.fsdecode(b"/photos/caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    assert g.add([face("Ada", "aa", 0, source=odd), face("Ada", "bb", 1)]) == 2
    g.close()
    assert os.fsencode(read_photos(tmp_path / "g.db")[0][2]) == b"/photos/caf\xe9.jpg"


def test_reading_never_creates_a_gallery_or_its_folder(tmp_path):
    for path in (tmp_path / "missing.db", tmp_path / "no" / "such" / "g.db"):
        with pytest.raises(GalleryError, match="not found"):
            SQLiteStore(path, "toy", "v1", DIM, create=False)
        assert not path.exists()
        assert path.parent == tmp_path or not path.parent.is_dir()


def test_an_existing_empty_world_readable_file_becomes_owner_only(tmp_path):
    path = tmp_path / "g.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    SQLiteStore(path, "toy", "v1", DIM).add([face("Ada", "aa", 0)])
    for p in (path, tmp_path / "g.db-wal", tmp_path / "g.db-shm"):
        assert not p.exists() or oct(os.stat(p).st_mode & 0o777) == "0o600"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_gallery_is_called_unreadable(tmp_path):
    path = tmp_path / "g.db"
    make_gallery(path, people=1)
    os.chmod(path, 0)
    with pytest.raises(GalleryError, match="cannot open"):
        SQLiteStore(path, "toy", "v1", DIM)


def test_a_gallery_that_refuses_to_open_lets_go_of_its_lock_at_once(tmp_path):
    """The refusal's exception keeps the half-made Gallery alive in its traceback: its lock must not."""
    from keyface.recognition.core.store import GalleryLock
    path = tmp_path / "g.db"
    make_gallery(path)
    try:
        SQLiteStore(path, "toy", "v2", DIM, create=False)  # made by model v1: refused
    except GalleryError as exc:
        assert "model v1" in str(exc)
        GalleryLock(path, exclusive=True).release()  # a rewrite may start while the error is still in hand
    else:
        raise AssertionError("a gallery of another model version was opened")


def test_enrolments_of_the_same_new_people_at_once_all_land(tmp_path):
    """Two `keyface enroll` of one new person at once: each checks the person is missing, then adds them. The
    check and the write are one transaction, so the later one finds the person the other just added."""
    path = tmp_path / "g.db"
    make_gallery(path, people=1)
    stores = [SQLiteStore(path, "toy", "v1", DIM, create=False) for _ in range(4)]

    def enrol(w):
        for p in range(15):
            stores[w].add([face(f"new {p}", f"w{w}-{p}", 1000 + 100 * w + p)])
    errors = at_once(enrol, len(stores))
    for store in stores:
        store.close()
    assert errors == []
    assert {(f"new {p}", f"w{w}-{p}") for p in range(15) for w in range(4)} <= stored(path)
    assert check_gallery(path) == []


def at_once(work, count: int) -> list[Exception]:
    """work(0), ..., work(count - 1) run in threads at once; the exceptions they raised."""
    import threading
    errors = []

    def guarded(w: int) -> None:
        try:
            work(w)
        except Exception as exc:
            errors.append(exc)
    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
