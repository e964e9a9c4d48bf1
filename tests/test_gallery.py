"""The SQLite gallery: idempotent enrolment, refusals, owner-only file, crash and concurrency safety."""
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keyface.recognition.core.records import Enrolment, check_name
from keyface.recognition.core.store import SQLiteStore
from keyface.data.errors import GalleryError
from keyface.recognition.core.search import nearest_people

DIM = 8
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = Path(REPO) / "recognition" / "demo"


def face(person: str, sha: str, seed: int) -> Enrolment:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return Enrolment(person, sha, f"/photos/{sha}.jpg", (1, 2, 30, 40), np.zeros((5, 2)), v / np.linalg.norm(v))


def test_enrolling_the_same_photo_twice_changes_nothing(tmp_path):
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    assert g.add([face("Ada Lovelace", "aa", 0), face("Ada Lovelace", "bb", 1)]) == 2
    assert g.add([face("Ada Lovelace", "aa", 0)]) == 0
    assert g.people() == [("Ada Lovelace", 2)] and g.matrix()[0].shape == (2, DIM)


def test_gallery_file_is_owner_only(tmp_path):
    SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM).add([face("A", "aa", 0)])
    assert stat.S_IMODE(os.stat(tmp_path / "g.db").st_mode) == 0o600


def test_other_embedder_or_version_is_refused_with_reindex_hint(tmp_path):
    SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM).close()
    with pytest.raises(GalleryError, match="made with model v1 of embedder 'toy', not v2: reindex it") as info:
        SQLiteStore(tmp_path / "g.db", "toy", "v2", DIM)
    from keyface.recognition.cli.hints import with_hint  # the same embedder: --embedder would not help
    assert with_hint(info.value).endswith(f"(run `keyface reindex --gallery {tmp_path / 'g.db'}`)")
    with pytest.raises(GalleryError, match="open it with embedder 'toy'") as info:
        SQLiteStore(tmp_path / "g.db", "other", "v1", DIM)
    assert "--" not in str(info.value)  # library terms: the command line adds its flags


def test_a_gallery_embedded_in_another_precision_is_refused_with_the_precision_to_use(tmp_path):
    from keyface import Gallery
    from keyface.data.errors import OtherModelError
    from keyface.recognition.cli.hints import with_hint
    SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM).close()
    with pytest.raises(OtherModelError, match="embedded in float32 by embedder 'toy', not in int8") as info:
        SQLiteStore(tmp_path / "g.db", "toy", "v1-int8", DIM)
    assert info.value.precision == "float32" and "--" not in str(info.value)
    assert with_hint(info.value).endswith(f"(use --precision float32, or run `keyface reindex --gallery "
                                          f"{tmp_path / 'g.db'} --precision int8`)")
    with pytest.raises(OtherModelError) as info:  # another model file is another model, whatever its precision
        SQLiteStore(tmp_path / "g.db", "toy", "v2-int8", DIM)
    assert info.value.precision is None and "not v2-int8: reindex it to re-embed its photos" in str(info.value)
    SQLiteStore(tmp_path / "i.db", "toy", "v1-int8", DIM).close()
    with Gallery(tmp_path / "g.db", create=False) as made, Gallery(tmp_path / "i.db", create=False) as int8:
        assert (made.precision, int8.precision) == ("float32", "int8")


def test_a_gallery_takes_a_recogniser_of_its_own_embedder_and_version_only(tmp_path):
    from types import SimpleNamespace
    from keyface import Gallery
    from keyface.data.errors import OtherModelError
    SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM).close()
    (tmp_path / "empty.db").touch()
    with pytest.raises(GalleryError, match="no keyface gallery"):  # nothing to open with its own embedder
        Gallery(tmp_path / "empty.db", create=False)
    assert (tmp_path / "empty.db").stat().st_size == 0
    with Gallery(tmp_path / "g.db", create=False) as gallery:
        assert gallery.embedder == "toy"
        for other in (("toy", "v2"), ("other", "v1")):
            with pytest.raises(OtherModelError, match="reindex it"):
                gallery.recogniser = SimpleNamespace(embedder=SimpleNamespace(name=other[0], version=other[1]))
        own = SimpleNamespace(embedder=SimpleNamespace(name="toy", version="v1"))
        gallery.recogniser = own
        assert gallery.recogniser is own
        gallery.recogniser = None  # the gallery's own again, loaded when next needed: no model named, none loaded
        assert gallery._recogniser is None and gallery.embedder == "toy"


def test_a_new_gallery_is_made_by_its_first_enrolment_and_never_by_a_question(tmp_path):
    from types import SimpleNamespace
    from keyface import Gallery
    from keyface.data.errors import EmptyGalleryError, PersonNotFoundError
    from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER
    where = tmp_path / "sub" / "g.db"
    with Gallery(where, SimpleNamespace(embedder=SimpleNamespace(name="toy", version="v1", dim=DIM))) as gallery:
        assert gallery.people() == {} and gallery.is_empty() and gallery.embedder == "toy"
        with pytest.raises(EmptyGalleryError, match="enrol people first"):
            gallery.search_index()
        with pytest.raises(PersonNotFoundError, match="no person named 'Ada'"):
            gallery.remove("Ada")
        assert gallery.store_enrolments("Ada", [], None) == (0, [])  # every photo failed: nothing to store
        assert not (tmp_path / "sub").exists()
        assert gallery.store_enrolments("Ada", [("a.jpg", face("Ada", "aa", 0))], None) == (1, [])
    with Gallery(where, create=False) as gallery:
        assert gallery.people() == {"Ada": 1} and gallery.embedder == "toy"
    with Gallery(tmp_path / "typo.db") as gallery:  # no recogniser: no model loads to say that no one is in it
        assert gallery.people() == {} and gallery.embedder == DEFAULT_EMBEDDER and gallery._recogniser is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_a_gallery_waiting_to_be_made_sees_one_made_since_by_another_process(tmp_path):
    from types import SimpleNamespace
    from keyface import Gallery
    toy = SimpleNamespace(embedder=SimpleNamespace(name="toy", version="v1", dim=DIM))
    with Gallery(tmp_path / "g.db", toy) as waiting, Gallery(tmp_path / "h.db", create=True) as questions:
        assert waiting.is_empty() and waiting.people() == {} and questions.people() == {}
        for path in (tmp_path / "g.db", tmp_path / "h.db"):  # as `keyface enroll` in another process would
            with SQLiteStore(path, "toy", "v1", DIM) as other:
                other.add([face("Ada", "aa", 0)])
        assert not waiting.is_empty() and waiting.people() == {"Ada": 1} and questions.people() == {"Ada": 1}
        assert waiting.search_index().search(face("Ada", "aa", 0).embedding[None])[0][0].person == "Ada"
        waiting.rename("Ada", "Ada Lovelace")
        assert questions.embedder == "toy"  # its own embedder now: the one it was made with
    with Gallery(tmp_path / "g.db", create=False) as reopened:
        assert reopened.people() == {"Ada Lovelace": 1}


def test_a_gallery_that_assumed_the_default_embedder_takes_the_one_made_elsewhere(tmp_path):
    from keyface import Gallery
    from keyface.data.errors import EmptyGalleryError
    with Gallery(tmp_path / "late.db") as late:
        with pytest.raises(EmptyGalleryError):
            late.identify(np.zeros((64, 64, 3), np.uint8))  # loads the default embedder for a gallery not made
        assert late._recogniser is not None and not late.exists
        with SQLiteStore(tmp_path / "late.db", "toy", "v1-int8", DIM) as other:  # another embedder, elsewhere
            other.add([face("Ada", "aa", 0)])
        assert late.exists and late.people() == {"Ada": 1}  # not refused as another embedder's gallery
        assert (late.embedder, late.precision, late._recogniser) == ("toy", "int8", None)


def test_foreign_sqlite_and_non_sqlite_files_are_refused_untouched(tmp_path):
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (t TEXT)")
    before = foreign.read_bytes()
    with pytest.raises(GalleryError, match="not a keyface gallery"):
        SQLiteStore(foreign, "toy", "v1", DIM)
    assert foreign.read_bytes() == before
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database at all " * 100)
    with pytest.raises(GalleryError, match="not a keyface gallery"):
        SQLiteStore(text, "toy", "v1", DIM)
    from keyface.data.errors import DamagedGalleryError
    from keyface.recognition.core.gallery_check import check_gallery, read_meta
    for other in (foreign, text):  # the check and a read without opening refuse them alike: no gallery, not damaged
        for reading in (check_gallery, read_meta):
            with pytest.raises(GalleryError, match="not a keyface gallery") as refused:
                reading(other)
            assert not isinstance(refused.value, DamagedGalleryError)
    assert foreign.read_bytes() == before


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a\\b", "bell\x07", "new\nline", "unknown", " Unknown ", ".", " .. "])
def test_bad_names_are_refused(name):
    with pytest.raises(GalleryError, match="invalid person name"):
        check_name(name)


def test_rename_and_remove(tmp_path):
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    g.add([face("A", "aa", 0), face("B", "bb", 1), face("B", "cc", 2)])
    g.rename("A", "Alice")
    with pytest.raises(GalleryError, match="already"):
        g.rename("Alice", "B")
    assert g.remove("B") == 2
    assert g.people() == [("Alice", 1)] and list(g.matrix()[1]) == ["Alice"]
    with pytest.raises(GalleryError, match="no person"):
        g.remove("B")


def test_a_person_named_only_dots_before_that_was_refused_can_still_be_renamed_and_removed(tmp_path):
    import keyface
    g = SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM)
    g.add([face("A", "aa", 0), face("B", "bb", 1)])
    with g._writing():  # as a gallery made before the rule holds them
        g.conn.execute("UPDATE people SET name = '.' WHERE name = 'A'")
        g.conn.execute("UPDATE people SET name = '..' WHERE name = 'B'")
    with pytest.raises(GalleryError, match="more than dots"):
        g.add([face(".", "cc", 2)])  # never stored anew
    g.rename(".", "Dot")
    with pytest.raises(GalleryError, match="more than dots"):
        g.rename("Dot", "..")
    g.close()
    with keyface.Gallery(tmp_path / "g.db", create=False) as gallery:
        assert gallery.remove("..") == 1 and gallery.people() == {"Dot": 1}


def test_search_finds_each_person_by_their_closest_photo():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = np.array([f"p{i % 7}" for i in range(60)], dtype=object)  # deliberately not grouped
    probes = vectors[[3, 17, 40]] + 0.01
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    result = nearest_people(probes, vectors, names, k=3)
    assert [r[0].person for r in result] == [names[3], names[17], names[40]]
    over = vectors[:1] * np.float32(1 + 3e-7)  # a face's own vector, normalised a hair over unit length
    assert 1 - float(over[0] @ vectors[0]) < 0
    own = nearest_people(over, vectors, names, k=1)[0][0]
    assert own.person == names[0] and own.distance == 0.0 and f"{own.distance:.3f}" == "0.000"
    brute = 1 - probes @ vectors.T
    for r, row in zip(result, brute):
        assert r[1].distance == pytest.approx(min(row[names == r[1].person]), abs=1e-5)
        assert r[0].distance <= r[1].distance <= r[2].distance


_WRITER = """
import sys, numpy as np

from keyface.recognition.core.records import Enrolment
from keyface.recognition.core.store import SQLiteStore

g = SQLiteStore(sys.argv[1], "toy", "v1", 8)
tag, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    v = np.ones(8, np.float32) / np.sqrt(8)
    g.add([Enrolment(f"{{tag}}-{{i % 5}}", f"{{tag}}{{i}}-{{j}}", "x", (0, 0, 1, 1), np.zeros((5, 2)), v) for j in range(50)])
print("done", flush=True)
"""


def _writer(path, tag, n):
    return subprocess.Popen([sys.executable, "-c", _WRITER.format(repo=REPO), str(path), tag, str(n)],
                            stdout=subprocess.PIPE, text=True)


def test_two_processes_enrolling_at_once_both_succeed(tmp_path):
    path = tmp_path / "g.db"
    SQLiteStore(path, "toy", "v1", DIM).close()
    procs = [_writer(path, "a", 20), _writer(path, "b", 20)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    g = SQLiteStore(path, "toy", "v1", DIM)
    assert sum(n for _, n in g.people()) == 2 * 20 * 50


def test_a_killed_enrolment_leaves_whole_photos_only(tmp_path):
    path = tmp_path / "g.db"
    SQLiteStore(path, "toy", "v1", DIM).close()
    proc = _writer(path, "k", 100000)
    time.sleep(2.0)  # let it commit some batches and be in the middle of another
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    g = SQLiteStore(path, "toy", "v1", DIM)
    photos = sum(n for _, n in g.people())
    assert photos > 0 and photos % 50 == 0  # each batch is one transaction: all of it or none
    assert len(g.matrix()[0]) == photos  # and every stored photo has its embedding
    assert g.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_faiss_index_gives_the_same_top1_as_exact_search():
    pytest.importorskip("faiss")
    from keyface.recognition.core.approximate import FaissIndex
    from keyface.recognition.core.search import ExactIndex
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(400, 32)).astype(np.float32)
    people = np.repeat(np.arange(400), 5)
    vectors = centres[people] + rng.normal(0, 0.5, (2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = np.array([f"p{i}" for i in people], object)
    probes = centres[:50] + rng.normal(0, 0.5, (50, 32)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact = ExactIndex(vectors, names).search(probes, k=1)
    approx = FaissIndex(vectors, names).search(probes, k=1)
    assert [e[0].person for e in exact] == [a[0].person for a in approx]
    assert np.allclose([e[0].distance for e in exact], [a[0].distance for a in approx], atol=1e-5)


def test_reading_a_gallery_leaves_nothing_beside_it(tmp_path):
    SQLiteStore(tmp_path / "g.db", "toy", "v1", 8).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with SQLiteStore(tmp_path / "g.db", "toy", "v1", 8, create=False) as gallery:
        assert gallery.people() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["g.db"]



def shared_by_threads(g, face) -> None:
    """Enrolments, refusals and searches at once on one store from 8 threads, as a web app's request threads
    share one gallery: each add is its own transaction, so a refused one (a photo already someone else's)
    rolls back only itself. `face(person, sha, seed)` makes an Enrolment of the store's dimension."""
    from concurrent.futures import ThreadPoolExecutor
    from keyface.data.errors import GalleryConflictError
    g.add([face("Owner", "taken", 0)])

    def work(i: int) -> str:
        if i % 3 == 0:  # its second photo belongs to Owner: the whole add is refused
            try:
                g.add([face(f"Refused {i}", f"r{i}", i), face(f"Refused {i}", "taken", 0)])
            except GalleryConflictError:
                return "refused"
            return "added?!"
        if i % 3 == 1:
            return "added" if g.add([face(f"Person {i}", f"p{i}", i)]) == 1 else "skipped?!"
        return "searched" if g.index().search(face("x", "x", i).embedding[None], 1)[0] else "empty?!"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(work, range(120)))
    assert outcomes.count("refused") == 40 and outcomes.count("added") == 40 and outcomes.count("searched") == 40
    assert {name for name, _ in g.people()} == {"Owner"} | {f"Person {i}" for i in range(1, 120, 3)}
    assert len(g.matrix()[1]) == 41


def test_one_store_serves_many_threads_and_a_refused_enrolment_takes_no_other_threads_rows(tmp_path):
    with SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM) as g:
        shared_by_threads(g, face)


def test_a_bad_name_is_shown_as_typed_with_its_unprintable_characters_as_escapes():
    for name, shown in [("a\u200bb", "'a\\u200bb'"), ("Bad\nName", "'Bad\\u000aName'"), ("Zoë\u202e", "'Zoë\\u202e'")]:
        with pytest.raises(GalleryError) as info:
            check_name(name)
        assert f"invalid person name {shown} (it contains U+" in str(info.value) and "\n" not in str(info.value)


def test_a_folder_named_as_the_gallery_is_called_a_folder(tmp_path):
    from keyface import Gallery
    from keyface.recognition.cli.main import main
    for create in (True, False):
        with pytest.raises(GalleryError, match="is a folder, not a gallery file"):
            SQLiteStore(tmp_path, "toy", "v1", DIM, create=create)
    with pytest.raises(GalleryError, match="is a folder, not a gallery file"):
        Gallery(tmp_path, create=False)
    assert main(["people", "--gallery", str(tmp_path)]) == 2


def test_a_softmax_head_of_another_model_version_is_refused_with_the_gallery_to_train_it_on(tmp_path):
    from keyface.data.errors import NoSoftmaxHeadError
    from keyface.recognition.cli.hints import with_hint
    from keyface.recognition.core.head import gallery_head, train_head
    made = {}
    for version in ("v1", "v2"):  # the same people, embedded by two model versions
        made[version] = SQLiteStore(tmp_path / f"{version}.db", "toy", version, DIM)
        made[version].add([face("Ada", "a1", 1), face("Ada", "a2", 2), face("Alan", "b1", 3)])
    head = train_head(made["v1"], tmp_path / "v1.db.head.keras", epochs=2)
    assert list(gallery_head(head, tmp_path / "v1.db", made["v1"]).people) == ["Ada", "Alan"]
    said = r"trained on toy \(model v1, float32\) embeddings, not the gallery's toy \(model v2, float32\)"
    with pytest.raises(NoSoftmaxHeadError, match=said) as info:
        gallery_head(head, tmp_path / "v2.db", made["v2"])
    assert with_hint(info.value).endswith(f"(run `keyface train-head --gallery {tmp_path / 'v2.db'}`)")
    with pytest.raises(NoSoftmaxHeadError, match="no softmax head"):
        gallery_head(tmp_path / "none.keras", tmp_path / "v1.db", made["v1"])
    for store in made.values():
        store.close()


def test_migrating_into_a_gallery_of_another_model_says_to_reindex_not_a_flag_migrate_lacks(tmp_path):
    from keyface.data.errors import GalleryConflictError
    from keyface.recognition.upkeep import migrate
    with SQLiteStore(tmp_path / "a.db", "toy", "v1", DIM) as store:
        store.add([face("Ada", "aa", 0)])
    with SQLiteStore(tmp_path / "b.db", "toy", "v2", DIM) as store:
        store.add([face("Ben", "bb", 1)])
    before = (tmp_path / "b.db").read_bytes()
    with pytest.raises(GalleryConflictError, match="reindex one of the two") as refused:
        migrate(tmp_path / "a.db", tmp_path / "b.db")
    assert "--" not in str(refused.value) and (tmp_path / "b.db").read_bytes() == before


def test_renaming_a_person_to_their_own_name_says_so(tmp_path):
    with SQLiteStore(tmp_path / "g.db", "toy", "v1", DIM) as store:
        store.add([face("Ada", "aa", 0)])
    import keyface
    with keyface.Gallery(tmp_path / "g.db", create=False) as gallery:
        with pytest.raises(keyface.GalleryConflictError, match="'Ada' is already that person's name"):
            gallery.rename("Ada", " Ada ")
        assert gallery.people() == {"Ada": 1}


@pytest.mark.parametrize("uri,shown,secrets", [
    ("postgresql://ada:secret@db.example/team", "postgresql://ada:***@db.example/team", ["secret"]),
    ("postgresql://kf@/faces?host=/run/pg&password=LeakA", "postgresql://kf@/faces?host=/run/pg&password=***", ["LeakA"]),
    ("postgresql:///faces?user=kf&PASSWORD=LeakB&host=/run", "postgresql:///faces?user=kf&PASSWORD=***&host=/run",
     ["LeakB"]),
    ("postgresql://kf:Leak?C@/faces", "postgresql://kf:***@/faces", ["Leak?C"]),  # ? # @ unencoded in the password
    ("postgresql://kf:Le#akD@/faces", "postgresql://kf:***@/faces", ["Le#akD"]),
    ("postgresql://kf:p@LeakE@/faces", "postgresql://kf:***@/faces", ["p@LeakE"]),
    ("postgres://u:p%40ss@h:5/db?sslpassword=key1", "postgres://u:***@h:5/db?sslpassword=***", ["p%40ss", "p@ss", "key1"]),
    ("postgresql://db/team?password=my secret pw", "postgresql://db/team?password=***", ["my secret pw"]),
    ("postgresql://db/team?password=ab#cdefgh", "postgresql://db/team?password=***", ["ab#cdefgh"]),
    ("postgresql://db/t?pass%77ord=hunter2", "postgresql://db/t?pass%77ord=***", ["hunter2"]),  # libpq decodes keys
    ("postgresql://kf:my@secretpw@localhost:1/faces", "postgresql://kf:***@localhost:1/faces", ["my@secretpw", "secretpw"]),
    # only the password: a database, user or host spelled like it stays readable in the location
    ("postgresql://postgres:postgres@localhost:5432/postgres", "postgresql://postgres:***@localhost:5432/postgres",
     []),
    ("postgresql://ada:hunter2@db/team?application_name=a@b", "postgresql://ada:***@db/team?application_name=a@b",
     ["hunter2"]),
    ("postgresql://db.example:5432/team", "postgresql://db.example:5432/team", []),
    ("my gallery.db", "my gallery.db", []),
])
def test_a_database_uri_is_shown_without_any_password(uri, shown, secrets):
    from keyface.data.paths import masked, shown_location
    assert shown_location(uri) == shown
    # a driver's message quoting the URI, or the password alone (decoded too), is masked as well
    said = masked(f'invalid URI: "{uri}" ({", ".join(secrets)})', uri)
    assert said.startswith(f'invalid URI: "{shown}"') and not any(secret in said for secret in secrets), said


@pytest.mark.parametrize("location, words", [
    ("postgresq://kf:Sup3rSecretPW@/faces?host=/run/pg", "not a postgresq:// address"),  # a typo
    ("postgresql+psycopg://kf:Sup3rSecretPW@db/faces", r"not a postgresql\+psycopg:// address"),  # SQLAlchemy's
    ("sqlite:///team.db", "not a sqlite:// address"),
    ("host=/run/pg password=Sup3rSecretPW dbname=faces", "libpq's key=value settings"),
])
def test_an_address_keyface_does_not_take_never_becomes_a_file(tmp_path, monkeypatch, capsys, location, words):
    """It used to be taken as a file's path: a gallery made in a folder named after the password, printed."""
    import shutil
    import keyface
    from keyface.recognition.cli.main import main
    photo = str(shutil.copy(sorted((DEMO / "gallery" / "Tom Cruise").glob("*.jpg"))[0], tmp_path / "tom.jpg"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GalleryError, match=words) as caught:
        keyface.Gallery(location)
    assert "Sup3rSecretPW" not in str(caught.value)
    for argv in (["people", "--gallery", location], ["enroll", "--name", "Ada", photo, "--gallery", location]):
        capsys.readouterr()
        assert main(argv) == 2
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and "a gallery is a file or a postgresql:// URI" in said, said
        assert "Sup3rSecretPW" not in said
    assert [p.name for p in tmp_path.iterdir()] == ["tom.jpg"]


def test_a_uri_echoed_by_an_argument_error_hides_its_password(capsys):
    from keyface.recognition.cli.main import main
    # verify takes no gallery: argparse names the arguments it refuses
    for location, shown in (("postgresql://kf:Sup3rSecretPW@db/faces", "postgresql://kf:***@db/faces"),
                            ("postgresq://kf:Sup3rSecretPW@db/faces", "postgresq://kf:***@db/faces"),
                            ("host=db password=Sup3rSecretPW", "password=***")):
        assert main(["verify", "a.jpg", "b.jpg", "--gallery", location]) == 2
        said = capsys.readouterr().err
        assert shown in said and "Sup3rSecretPW" not in said, said
