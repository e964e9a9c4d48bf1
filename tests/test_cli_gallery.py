"""The gallery commands end to end on real photos (tiny untrained keypoint net, geometry embedder)."""
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from keyface.recognition.cli.main import main
from tests.badimages import two_face_photo, write_bad_files


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def json_lines(out: str) -> list[dict]:
    """identify/embed --json: one JSON object per photo per line."""
    return [json.loads(line) for line in out.splitlines()]


def test_enrol_identify_people_rename_remove(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    (a, _), (b, _), (c, _), (d, _) = youtube_sample
    code, out, _ = run(["enroll", "--name", "Kristen Breitweiser", a, "--gallery", db, *models], capsys)
    assert code == 0 and "1 photo(s) added" in out and f"gallery {db}: 1 person; 1 photo(s) added" in out
    code, out, _ = run(["enroll", "--name", "Kristen Breitweiser", a, "--gallery", db, *models], capsys)
    assert code == 0 and "0 photo(s) added (1 already enrolled)" in out  # the same photo twice changes nothing
    run(["enroll", "--name", "Luis Fonsi", c, "--gallery", db, *models], capsys)
    code, out, _ = run(["identify", a, "--gallery", db, "--json", "--threshold", "2", *models], capsys)
    face = json_lines(out)[0]["faces"][0]
    assert code == 0 and face["name"] == "Kristen Breitweiser" and face["matches"][0]["distance"] < 1e-4
    assert face["distance"] == face["matches"][0]["distance"]  # the nearest's, as a video track gives it
    code, out, _ = run(["people", "--gallery", db, "--json"], capsys)
    assert json.loads(out) == [{"name": "Kristen Breitweiser", "photos": 1}, {"name": "Luis Fonsi", "photos": 1}]
    assert run(["rename", "Luis Fonsi", "Luis", "--gallery", db], capsys)[0] == 0
    assert run(["remove", "Luis", "--gallery", db], capsys)[0] == 0
    assert json.loads(run(["people", "--gallery", db, "--json"], capsys)[1]) == [{"name": "Kristen Breitweiser", "photos": 1}]


def test_unknown_beyond_threshold_and_verify(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    code, out, _ = run(["identify", youtube_sample[2][0], "--gallery", db, "--json", "--threshold", "0", *models], capsys)
    assert code == 0 and json_lines(out)[0]["faces"][0]["name"] == "unknown"
    code, out, _ = run(["verify", youtube_sample[0][0], youtube_sample[0][0], "--json", "--threshold", "0.3", *models],
                       capsys)
    result = json.loads(out)
    assert code == 0 and result["same"] and result["distance"] < 1e-4
    code, out, _ = run(["verify", youtube_sample[0][0], youtube_sample[2][0], "--threshold", "0", *models], capsys)
    assert code == 1 and out.startswith("different people")  # exit 1: different people, not an error
    Image.new("RGB", (120, 120), (128, 128, 128)).save(tmp_path / "wall.jpg")
    code, out, err = run(["verify", tmp_path / "wall.jpg", youtube_sample[0][0], "--json", "--threshold", "0.3", *models],
                         capsys)  # a script reading stdout hears of the error too
    assert code == 2 and json.loads(out) == {"same": None, "distance": None, "threshold": 0.3,
                                             "error": f"{tmp_path / 'wall.jpg'}: no face found"}, out
    assert err.strip() == f"keyface: error: {tmp_path / 'wall.jpg'}: no face found"
    for missing in (tmp_path / "nope.jpg", tmp_path):  # refused before any model loads: on stdout all the same
        code, out, err = run(["verify", youtube_sample[0][0], missing, "--json", *models], capsys)
        assert code == 2 and json.loads(out)["error"] == err.strip().removeprefix("keyface: error: "), (out, err)


def test_a_model_without_calibrated_threshold_asks_for_one(youtube_sample, models, capsys):
    code, out, err = run(["verify", youtube_sample[0][0], youtube_sample[1][0], *models], capsys)
    assert code == 2 and out == "" and "no calibrated threshold: calibrate the model" in err and "--threshold" in err \
        and "`keyface calibrate " in err \
        and len(err.splitlines()) == 1
    code, out, err = run(["verify", youtube_sample[0][0], youtube_sample[1][0], "--json", *models], capsys)
    answer = json.loads(out)
    assert code == 2 and answer["same"] is None and answer["threshold"] is None and "calibrate" in answer["error"]


def test_photo_with_several_faces_is_refused_unless_largest_face(tmp_path, youtube_sample, models, capsys):
    photo, _ = two_face_photo(tmp_path, [youtube_sample[0][0], youtube_sample[2][0]], scale_second=0.7)
    db = tmp_path / "g.db"
    code, out, err = run(["enroll", "--name", "Kristen", photo, "--gallery", db, *models], capsys)
    assert code == 2 and "0 photo(s) added" in out and "2 faces found" in err and "--largest-face" in err
    code, out, _ = run(["enroll", "--name", "Kristen", photo, "--largest-face", "--gallery", db, *models], capsys)
    assert code == 0 and "1 photo(s) added" in out
    # the enrolled face is the larger (left) one: it matches the original photo, not the other person
    code, out, _ = run(["identify", youtube_sample[0][0], "--gallery", db, "--json", "--threshold", "2", *models], capsys)
    left = json_lines(out)[0]["faces"][0]["matches"][0]["distance"]
    code, out, _ = run(["identify", youtube_sample[2][0], "--gallery", db, "--json", "--threshold", "2", *models], capsys)
    right = json_lines(out)[0]["faces"][0]["matches"][0]["distance"]
    assert left < right


def test_embed_gives_unit_vectors(youtube_sample, models, capsys):
    code, out, _ = run(["embed", youtube_sample[1][0], *models], capsys)
    face = json_lines(out)[0]["faces"][0]
    assert code == 0 and abs(np.linalg.norm(face["embedding"]) - 1) < 1e-4 and len(face["keypoints"]) == 68


def test_gallery_of_another_embedder_is_refused_and_untouched(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    from keyface.recognition.core.gallery_check import read_meta, read_photos
    before = (read_meta(db), read_photos(db))
    other = models[:2] + ["--embedder", "dlib-resnet"]  # the shipped embedder: it loads, then meets the gallery
    code, _, err = run(["identify", youtube_sample[0][0], "--gallery", db, *other], capsys)
    assert code == 2 and "Traceback" not in err and (read_meta(db), read_photos(db)) == before
    assert "was made with embedder 'geometry'" in err and "(use --embedder geometry, or run `keyface reindex" in err
    from keyface.recognition.cli.hints import with_hint
    from keyface.recognition.core.store import SQLiteStore
    from keyface.data.errors import GalleryError
    with pytest.raises(GalleryError, match="open it with embedder 'geometry', or reindex it") as info:
        SQLiteStore(db, "keypoints", "v0", 8)
    assert "--" not in str(info.value)  # library terms; the command line names its flags
    assert with_hint(info.value).endswith(
        f"(use --embedder geometry, or run `keyface reindex --gallery {db} --embedder keypoints`)")


def test_a_gallery_is_used_with_its_own_embedder_when_none_is_named(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    assert run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)[0] == 0
    own = [flag for flag in models if flag not in ("--embedder", "geometry")]  # the model files, no embedder named
    code, out, err = run(["identify", youtube_sample[1][0], "--gallery", db, "--json", "--threshold", "2", *own],
                         capsys)
    assert code == 0, err
    assert json_lines(out)[0]["faces"][0]["matches"][0]["person"] == "Kristen"
    code, _, err = run(["enroll", "--name", "Kristen", youtube_sample[1][0], "--gallery", db, *own], capsys)
    assert code == 0 and "was made with" not in err


def test_library_errors_get_their_flags_on_the_command_line(tmp_path, monkeypatch):
    import numpy as np
    from keyface.data.errors import KeyfaceError
    from keyface.data.paths import DATA_ENV, data_root
    from keyface.recognition.cli.hints import with_hint
    from keyface.recognition.core.damage import damaged
    from keyface.data.errors import DamagedGalleryError
    from keyface.recognition.core.open_set import cut_at_far
    from keyface.keypoints.predictor import InputSpec, face_matrix
    from keyface.recognition.core.pipeline import Face
    monkeypatch.delenv(DATA_ENV, raising=False)
    errors = []
    from types import SimpleNamespace
    from keyface.recognition.core.clustering import cluster_threshold
    from keyface.recognition.core.store import SQLiteStore
    uncalibrated = SimpleNamespace(name="toy", metadata={})
    for fail in (lambda: data_root(None), lambda: cut_at_far(np.linspace(0, 1, 50), 0.001),
                 lambda: face_matrix(Face((0, 0, 9, 9), 1.0, np.zeros((68, 2))),
                                     InputSpec(150, 3, alignment="dlib-mtcnn5")),
                 lambda: cluster_threshold(uncalibrated, None),
                 lambda: SQLiteStore(tmp_path / "missing.db", None, None, None, create=False)):
        with pytest.raises(KeyfaceError) as info:
            fail()
        errors.append(info.value)
    errors.append(DamagedGalleryError(damaged(tmp_path / "g.db", "database disk image is malformed"), tmp_path / "g.db",
                                      "check"))
    assert not [e for e in errors if "--" in str(e) or "`keyface" in str(e)], errors
    hinted = [with_hint(e) for e in errors]  # chosen by the error's kind, not by its words
    assert hinted[0].endswith("(--data PATH)") and hinted[1].endswith("(--far)")
    assert hinted[2].endswith("(--detector mtcnn)")
    assert hinted[3].endswith("(run `keyface calibrate toy`, or pass --threshold)")
    assert hinted[4].endswith(f"(run `keyface enroll --gallery {tmp_path / 'missing.db'} --name NAME PHOTO...`)")
    assert hinted[5].endswith(f"(run `keyface check --gallery {tmp_path / 'g.db'}`)")
    assert with_hint("photo.jpg: no face found") == "photo.jpg: no face found"
    from keyface.data.errors import EmptyGalleryError
    hidden = EmptyGalleryError("gallery postgresql://ada:***@db.example/team is empty", "postgresql://ada:***@db.example/team")
    assert with_hint(hidden).endswith(  # a command to copy, saying where the password goes
        "(run `keyface enroll --gallery postgresql://ada:PASSWORD@db.example/team --name NAME PHOTO...`)")
    in_query = EmptyGalleryError("empty", "postgresql://ada@/team?host=/run&password=***")
    assert with_hint(in_query).endswith(
        "--gallery 'postgresql://ada@/team?host=/run&password=PASSWORD' --name NAME PHOTO...`)")
    assert with_hint(EmptyGalleryError("empty", tmp_path / "my team.db")).endswith(
        f"(run `keyface enroll --gallery '{tmp_path / 'my team.db'}' --name NAME PHOTO...`)")
    assert with_hint(KeyfaceError("a message that reads like --far or a false-accept rate")).endswith("rate")


@pytest.mark.parametrize("bad", ["not_image.jpg", "truncated.jpg", "bomb.png"])
def test_bad_photos_enrol_nothing_and_say_why(tmp_path, bad, models, capsys):
    db = tmp_path / "g.db"
    photo = write_bad_files(tmp_path / "bad")[bad]
    code, out, err = run(["enroll", "--name", "X", photo, "--gallery", db, *models], capsys)
    assert code == 2 and bad in err and "Traceback" not in err
    assert not db.exists()  # a gallery is made by its first enrolment: no one was enrolled
    assert out.splitlines()[-1] == f"gallery {db} not made: no photo was added"
    code, _, err = run(["people", "--gallery", db, "--json"], capsys)
    assert code == 2 and "gallery not found" in err  # and the command to copy names the gallery
    assert err.rstrip().endswith(f"(run `keyface enroll --gallery {db} --name NAME PHOTO...`)")


@pytest.mark.parametrize("name", ["a/b", "bell\x07", ""])
def test_bad_names_and_empty_folders_are_refused(tmp_path, youtube_sample, models, capsys, name):
    code, _, err = run(["enroll", "--name", name, youtube_sample[0][0], "--gallery", tmp_path / "g.db", *models], capsys)
    assert code == 2 and ("invalid person name" in err or "--name" in err)
    (tmp_path / "empty").mkdir()
    code, _, err = run(["enroll", "--folders", tmp_path / "empty", "--gallery", tmp_path / "g.db", *models], capsys)
    assert code == 2 and "empty" in err


def test_enrol_folders_and_reindex(tmp_path, youtube_sample, models, capsys):
    folders = tmp_path / "people"
    for path, _ in youtube_sample:
        person = path.stem.rsplit("_", 1)[0]
        (folders / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folders / person / path.name)
    db = tmp_path / "g.db"
    code, out, _ = run(["enroll", "--folders", folders, "--gallery", db, *models], capsys)
    assert code == 0 and "4 photo(s) added" in out
    code, out, _ = run(["reindex", "--gallery", db, *models], capsys)
    assert code == 0 and "reindexed 4 photo(s)" in out and (tmp_path / "g.db.bak").is_file()
    first = (tmp_path / "g.db.bak").read_bytes()
    for earlier in (1, 2):  # each reindex keeps the backups before it: nothing is overwritten
        assert run(["reindex", "--gallery", db, *models], capsys)[0] == 0
        assert (tmp_path / f"g.db.bak.{earlier}").is_file() and (tmp_path / "g.db.bak").is_file()
    assert (tmp_path / "g.db.bak.2").read_bytes() == first and not (tmp_path / "g.db.bak.3").exists()  # oldest last
    assert (tmp_path / "g.db.bak").stat().st_mtime_ns >= (tmp_path / "g.db.bak.1").stat().st_mtime_ns


@pytest.mark.slow
def test_train_head_then_identify_with_it(tmp_path, youtube_sample, models, capsys, caplog):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], youtube_sample[1][0], "--gallery", db, *models], capsys)
    run(["enroll", "--name", "Luis", youtube_sample[2][0], youtube_sample[3][0], "--gallery", db, *models], capsys)
    code, out, err = run(["identify", youtube_sample[0][0], "--head", "--gallery", db, *models], capsys)
    assert code == 2 and "train-head" in err
    assert run(["train-head", "--gallery", db, *models], capsys)[0] == 0
    assert "over 2 people gives every face at least 0.50 for one of them" in caplog.text  # no one unknown at 0.5
    heads = [p for p in tmp_path.iterdir() if p.suffix == ".keras"]  # fitted on faces: owner-only, as the gallery
    assert len(heads) == 1 and heads[0].stat().st_mode & 0o777 == 0o600
    code, out, _ = run(["identify", youtube_sample[0][0], "--head", "--json", "--gallery", db, *models], capsys)
    face = json_lines(out)[0]["faces"][0]
    assert code == 0 and face["name"] == "Kristen" and 0.5 <= face["probability"] <= 1
    code, out, _ = run(["identify", youtube_sample[0][0], "--head", "--min-probability", "1", "--gallery", db,
                        *models], capsys)  # only a saturated head is that sure; the line says how sure it was
    assert code == 0 and (": unknown  (probability 0." in out) == (face["probability"] < 1)
    assert f"probability {face['probability']:.3f}; " in out  # as sure as distances are shown: 0.997, not 1.00
    for flags, said in ((["--head", "--threshold", "0.3"], "with --head the softmax head names faces"),
                        (["--head", "--far", "0.01"], "with --head the softmax head names faces"),
                        (["--min-probability", "0.9"], "give --head too"),
                        (["--threshold", "0.3", "--far", "0.01"], "give one of them")):
        code, out, err = run(["identify", youtube_sample[0][0], *flags, "--gallery", db, *models], capsys)
        assert code == 2 and said in err and out == ""
    run(["rename", "Luis", "Luis B", "--gallery", db], capsys)  # the head still says "Luis": refused, not used
    code, out, err = run(["identify", youtube_sample[0][0], "--head", "--gallery", db, *models], capsys)
    assert code == 2 and "trained on other people" in err and "train-head" in err and out == ""
    assert run(["train-head", "--gallery", db, *models], capsys)[0] == 0
    _a_kept_gallery_forgets_its_head_when_its_people_change(db, youtube_sample[0][0], models)


def _a_kept_gallery_forgets_its_head_when_its_people_change(db, photo, models):
    """A server keeps one Gallery: a rename through it must not leave the head it loaded in use."""
    from keyface.data.errors import NoSoftmaxHeadError
    from keyface.recognition.facade import Gallery, build
    options = dict(zip(models[0::2], models[1::2]))
    recogniser = build(options["--embedder"], model=options["--embedder-model"],
                       keypoint_model=options["--keypoint-model"], threshold=2.0)
    with Gallery(db, recogniser) as gallery:
        assert gallery.identify(photo, head=True, min_probability=0.0)[0].name == "Kristen"
        gallery.rename("Kristen", "Kristen S")
        with pytest.raises(NoSoftmaxHeadError, match="trained on other people"):
            gallery.identify(photo, head=True)


def test_demo_runs_offline_on_the_shipped_sample(tmp_path, models, capsys):
    code, out, _ = run(["demo", "--out", tmp_path / "demo", "--threshold", "0.5", *models], capsys)
    assert code == 0 and "held-out photos right" in out
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.count("<figure") == 20 and (tmp_path / "demo" / "demo-gallery.db").is_file()
    assert len(list((tmp_path / "demo" / "photos").glob("*.jpg"))) == 20
    code, out, _ = run(["demo", "--out", tmp_path / "demo", "--threshold", "0.5", *models], capsys)
    assert code == 0 and len(list((tmp_path / "demo" / "photos").glob("*.jpg"))) == 20  # a re-run piles up nothing
    assert (tmp_path / "demo" / "index.html").stat().st_mode & 0o777 == 0o600  # names and faces: owner-only
    assert f"the demo's gallery is {tmp_path / 'demo' / 'demo-gallery.db'}" in out


def test_cluster_writes_a_folder_per_cluster_and_a_contact_sheet(tmp_path, youtube_sample, models, capsys):
    photos = [p for p, _ in youtube_sample] + [write_bad_files(tmp_path / "bad")["not_image.jpg"]]
    photos[0] = shutil.copy(photos[0], tmp_path / "a#b%41?.jpg")  # an address's own signs in a file name
    code, out, err = run(["cluster", *photos, "--out", tmp_path / "c", "--threshold", "0.5", *models], capsys)
    assert code == 2 and "not_image.jpg" in err  # the bad photo is reported, the others still clustered
    listing = json.loads((tmp_path / "c" / "clusters.json").read_text())
    assert len(listing["faces"]) == 4 and listing["threshold"] == 0.5
    crops = sorted((tmp_path / "c").glob("cluster-*/*.jpg"))
    assert len(crops) == 4 and (tmp_path / "c" / "index.html").read_text().count("<img") == 4
    sheet = (tmp_path / "c" / "index.html").read_text()
    from urllib.parse import unquote
    sources = {unquote(src) for src in re.findall(r'<img src="([^"]+)"', sheet)}
    assert sources == {str(c.relative_to(tmp_path / "c")) for c in crops} and "a%23b%2541%3F.jpg" in sheet
    clusters = {f["cluster"] for f in listing["faces"]}
    assert f"-> {len(clusters)} cluster{'' if len(clusters) == 1 else 's'} " in out
    assert "4 faces in 4 photos ->" in out  # the bad photo is not counted among those clustered
    assert all(v == round(v, 1) for f in listing["faces"] for v in f["box"])  # boxes to 0.1 px, as every output


def test_cluster_scores_and_threshold_cut():
    from keyface.recognition.core.clustering import cluster_faces, pairwise_scores
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16)
    truth = np.repeat([0, 1, 2], [5, 3, 2])
    vectors = centres[truth] + rng.normal(0, 0.05, (10, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = cluster_faces(vectors, 0.5)
    assert pairwise_scores(truth, labels)["pairwise_f"] == 1.0 and labels[0] == 0  # the largest is cluster 0
    assert len(set(cluster_faces(vectors, 2.0))) == 1  # a loose cut merges everyone
    merged = pairwise_scores(truth, np.zeros(10, int))
    # 10 + 3 + 1 = 14 true pairs of 45: precision 14/45, recall 1
    assert merged["pairwise_precision"] == pytest.approx(14 / 45) and merged["pairwise_recall"] == 1.0
    assert merged["nmi"] == pytest.approx(0.0)


def test_enrol_is_enroll_and_unknown_is_no_name(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    code, out, _ = run(["enrol", "--name", "Ada", youtube_sample[0][0], "--gallery", db, *models], capsys)
    assert code == 0 and "1 photo(s) added" in out
    code, _, err = run(["rename", "Ada", "unknown", "--gallery", db], capsys)
    assert code == 2 and "invalid person name" in err
    code, out, _ = run(["people", "--gallery", db], capsys)
    assert "Ada" in out


def test_a_small_face_in_the_background_does_not_make_a_photo_ambiguous(tmp_path, youtube_sample, models, capsys):
    photo, _ = two_face_photo(tmp_path, [youtube_sample[0][0], youtube_sample[2][0]], scale_second=0.35)
    from keyface.data.images import load_image
    from keyface.recognition.core.pipeline import make_detector
    assert len(make_detector().detect(load_image(photo))) == 2  # both found: the small one is not missed
    code, out, _ = run(["enroll", "--name", "Kristen", photo, "--gallery", tmp_path / "g.db", *models], capsys)
    assert code == 0 and "1 photo(s) added" in out


def test_reindex_keeps_a_photo_enrolled_by_its_largest_face(tmp_path, capsys):
    from pathlib import Path
    gallery = Path(__file__).resolve().parent.parent / "recognition" / "demo" / "gallery" / "Tom Cruise"
    photos = sorted(gallery.glob("*.jpg"))  # Tom_Cruise_0003.jpg shows a second person
    db = tmp_path / "g.db"
    code, out, _ = run(["enroll", "--name", "Tom Cruise", "--largest-face", *photos, "--gallery", db], capsys)
    assert code == 0 and f"{len(photos)} photo(s) added" in out
    code, out, err = run(["reindex", "--gallery", db, "--embedder", "facenet"], capsys)
    assert code == 0 and f"reindexed {len(photos)} photo(s)" in out, err
    code, out, _ = run(["people", "--gallery", db], capsys)
    assert f"Tom Cruise\t{len(photos)}" in out


def test_several_photos_identified_at_once_print_as_one_at_a_time_would(tmp_path, youtube_sample, models, capsys):
    from keyface.runtime import networks
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    photos = [youtube_sample[1][0], broken, youtube_sample[2][0], youtube_sample[0][0]]
    one_by_one = run(["identify", *photos, "--gallery", db, "--workers", "1", "--threshold", "0.5", *models], capsys)
    together = run(["identify", *photos, "--gallery", db, "--workers", "3", "--threshold", "0.5", *models], capsys)
    assert networks.cpu_threads() == max(1, (os.cpu_count() or 1) // 3)  # the cores shared out between three photos
    embedded = [run(["embed", *photos, "--workers", n, *models], capsys) for n in ("1", "3")]
    assert embedded[0] == embedded[1] and embedded[0][0] == 2 and len(embedded[0][1].splitlines()) == 4
    assert together == one_by_one and together[0] == 2  # the broken photo's error, the others named
    lines = together[1].splitlines()
    assert [line.split(" face ")[0] for line in lines] == [str(p) for p in photos if p != broken]
    assert lines[-1].split(": ")[1].startswith("Kristen") and "broken.jpg" in together[2]


def test_an_empty_gallery_is_refused_by_its_kind_with_the_enrol_command(tmp_path, youtube_sample, models, capsys):
    from keyface import EmptyGalleryError
    from keyface.recognition.facade import Gallery, build
    db, (photo, _) = tmp_path / "g.db", youtube_sample[0]
    run(["enroll", "--name", "Kristen", photo, "--gallery", db, *models], capsys)
    run(["remove", "Kristen", "--gallery", db], capsys)
    code, out, err = run(["identify", photo, "--gallery", db, "--threshold", "2", *models], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "is empty" in err and err.rstrip().endswith(f"(run `keyface enroll --gallery {db} --name NAME PHOTO...`)")
    # refused first: before a camera opens, a head is looked for or a cut is read
    for given in (["--camera", "99"], ["--head", photo], [photo]):
        code, _, err = run(["identify", *given, "--gallery", db, *models], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and "is empty" in err, err
    flag = dict(zip(models[::2], models[1::2]))
    rec = build("geometry", model=flag["--embedder-model"], keypoint_model=flag["--keypoint-model"], threshold=2.0)
    with Gallery(db, rec) as gallery:
        with pytest.raises(EmptyGalleryError):  # refused when asked, before any photo is worked on
            gallery.identify_all([photo], index="exact")
        gallery.enrol("Kristen", [photo])
        [(_, faces)] = list(gallery.identify_all([photo], index="exact"))
    assert faces[0].name == "Kristen"


def test_a_gallery_embedded_in_float32_is_opened_in_float32_unless_told_otherwise(tmp_path, youtube_sample, capsys):
    import keyface
    db, (photo, _), (other, _) = tmp_path / "g.db", youtube_sample[0], youtube_sample[2]
    assert run(["enroll", "--name", "Kristen", photo, "--gallery", db, "--precision", "float32"], capsys)[0] == 0
    assert run(["enroll", "--name", "Luis", other, "--gallery", db], capsys)[0] == 0  # into it: in float32 too
    code, out, err = run(["identify", photo, "--gallery", db, "--json"], capsys)
    assert code == 0 and json_lines(out)[0]["faces"][0]["name"] == "Kristen", err
    code, _, err = run(["identify", photo, "--gallery", db, "--precision", "int8"], capsys)
    assert code == 2 and "was embedded in float32 by embedder 'dlib-resnet', not in int8" in err
    assert f"(use --precision float32, or run `keyface reindex --gallery {db} --precision int8`)" in err
    with keyface.Gallery(db) as team:
        assert team.precision == "float32" and [f.name for f in team.identify(other)] == ["Luis"]
        team.recogniser = keyface.build(team.embedder, precision=team.precision, min_face=48)  # as the README has it
    code, out, err = run(["reindex", "--gallery", db, "--precision", "int8"], capsys)  # as the hint says
    assert code == 0 and "with dlib-resnet" in out and "-int8)" in out, err  # its own embedder, in int8
    with keyface.Gallery(db) as team:
        assert team.precision == "int8" and [f.name for f in team.identify(other)] == ["Luis"]


def test_serve_and_enroll_ask_for_a_gallerys_own_embedder_in_its_own_precision(tmp_path):
    from keyface.recognition.core.store import SQLiteStore
    from keyface.recognition.facade import embedder_for, made_by
    SQLiteStore(tmp_path / "f.db", "dlib-resnet", "aa3e-int8", 4).close()
    SQLiteStore(tmp_path / "g.db", "dlib-resnet", "aa3e", 4).close()
    made = {name: made_by(tmp_path / name) for name in ("f.db", "g.db", "none.db")}
    assert [made[name].get("precision") for name in made] == ["int8", "float32", None]
    asked = {name: embedder_for(None, None, m) for name, m in made.items()}
    # int8 is dlib-resnet's own: asked as "the embedder's own", so its keypoint net keeps its own precision too
    assert asked == {"f.db": ("dlib-resnet", None), "g.db": ("dlib-resnet", "float32"), "none.db": ("dlib-resnet", None)}
    assert embedder_for("facenet", None, made["g.db"]) == ("facenet", None)
    assert embedder_for(None, "int8", made["g.db"]) == ("dlib-resnet", "int8")


def test_enroll_into_an_empty_file_makes_the_gallery_there(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    db.touch()  # as `touch g.db` or a file-picker leaves it: the API took it as a new gallery, the CLI failed
    code, out, err = run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    assert code == 0 and "1 photo(s) added" in out, err
    assert json.loads(run(["people", "--gallery", db, "--json"], capsys)[1]) == [{"name": "Kristen", "photos": 1}]
    (tmp_path / "zero.db").touch()  # `check` says so too, rather than calling it damaged
    code, out, err = run(["check", "--gallery", tmp_path / "zero.db"], capsys)
    assert code == 2 and "holds no keyface gallery yet" in err and "damaged" not in out + err
    code, out, err = run(["check", "--gallery", tmp_path / "none.db"], capsys)
    assert code == 2 and f"keyface enroll --gallery {tmp_path / 'none.db'}" in err


def test_reindex_with_a_photo_moved_away_is_refused_or_leaves_it_out_when_asked(tmp_path, youtube_sample, models,
                                                                                capsys, caplog):
    photos = [tmp_path / f"p{i}.jpg" for i in range(3)]
    for (source, _), copy in zip(youtube_sample[:3], photos):
        shutil.copy(source, copy)
    db = tmp_path / "g.db"
    assert run(["enroll", "--name", "Kristen", *photos[:2], "--gallery", db, *models], capsys)[0] == 0
    assert run(["enroll", "--name", "Other", photos[2], "--gallery", db, *models], capsys)[0] == 0
    photos[1].rename(tmp_path / "moved.jpg")
    before = db.read_bytes()
    code, _, err = run(["reindex", "--gallery", db, *models], capsys)
    assert code == 2 and "1 photo(s) missing or changed" in err and "p1.jpg (enrolled for Kristen)" in err
    assert "--skip-missing" in err
    assert db.read_bytes() == before and not (tmp_path / "g.db.bak").exists()  # refused whole: nothing changed
    code, out, err = run(["reindex", "--gallery", db, "--skip-missing", *models], capsys)
    assert code == 0 and "reindexed 2 photo(s)" in out and "left out 1 whose file is gone" in out, err
    assert "p1.jpg (enrolled for Kristen) is missing" in caplog.text  # each photo left out is named as it goes
    assert run(["people", "--gallery", db], capsys)[1].startswith("Kristen\t1\nOther\t1")
    photos[0].rename(tmp_path / "moved-too.jpg")  # every photo of a person gone: the person is named as gone
    code, out, _ = run(["reindex", "--gallery", db, "--skip-missing", *models], capsys)
    assert code == 0 and "reindexed 1 photo(s)" in out and "'Kristen' is left out of the new gallery" in caplog.text
    photos[2].rename(tmp_path / "moved-last.jpg")  # every photo gone: refused, not an empty gallery called a success
    before = db.read_bytes()
    code, out, err = run(["reindex", "--gallery", db, "--skip-missing", *models], capsys)
    assert code == 2 and "would empty the gallery" in err and db.read_bytes() == before


def test_an_empty_name_is_refused_as_a_name(tmp_path, youtube_sample, capsys):
    code, _, err = run(["enroll", "--name", "", str(youtube_sample[0][0]), "--gallery", tmp_path / "g.db"], capsys)
    assert code == 2 and "invalid person name" in err and "give either" not in err, err
    assert not (tmp_path / "g.db").exists()


def test_enroll_says_each_persons_refusals_before_the_next_person(tmp_path, youtube_sample, models, capsys, monkeypatch):
    """A run stopped part way (Ctrl-C, a database outage) has already said why each earlier photo was refused."""
    from keyface.recognition.cli import enrolling
    for person, photo in (("Ada", youtube_sample[0][0]), ("Ben", youtube_sample[1][0])):
        (tmp_path / "people" / person).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "people" / person / "face.jpg")
    Image.new("RGB", (120, 120), (128, 128, 128)).save(tmp_path / "people" / "Ada" / "wall.jpg")
    enrol_person = enrolling._enrol_person

    def stopped_at_ben(gallery, name, photos, args):
        if name == "Ben":
            raise KeyboardInterrupt
        return enrol_person(gallery, name, photos, args)
    monkeypatch.setattr(enrolling, "_enrol_person", stopped_at_ben)
    code, out, err = run(["enroll", "--folders", tmp_path / "people", "--gallery", tmp_path / "g.db", *models], capsys)
    assert code == 130 and "Ada: 1 photo(s) added" in out
    assert f"{tmp_path / 'people' / 'Ada' / 'wall.jpg'}: no face found" in err and "interrupted" in err


def test_a_gallery_that_cannot_be_written_says_why_it_cannot_be_read(tmp_path, youtube_sample):
    """SQLite writes to a gallery it reads (its WAL journal): a read-only file, or a file in a read-only folder,
    is refused saying which; it used to be "permission denied" and "attempt to write a readonly database"."""
    import subprocess
    import sys
    (photo, _), folder = youtube_sample[0], tmp_path / "shelf"
    folder.mkdir()
    assert main(["enroll", "--name", "Kristen", str(photo), "--gallery", str(folder / "g.db")]) == 0
    shutil.copy(folder / "g.db", tmp_path / "ro.db")
    (tmp_path / "ro.db").chmod(0o444)
    folder.chmod(0o555)
    # root reads and writes past file modes: run as root without that power, where the tool exists
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root reads and writes any file, and setpriv is not here to run without that power")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        said = {}
        for gallery in (tmp_path / "ro.db", folder / "g.db"):
            run = subprocess.run([*prefix, sys.executable, "-m", "keyface", "people", "--gallery", str(gallery)],
                                 capture_output=True, text=True, env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
            assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
            said[gallery.name] = run.stderr
    finally:
        folder.chmod(0o755)
    assert "it is read-only here, and SQLite writes to a gallery it reads" in said["ro.db"]
    assert f"SQLite writes its journal in {folder}, which is read-only here" in said["g.db"]
