"""Hostile input at the command line: each case gets its one-line error or the right answer, and the
gallery afterwards passes `keyface check` with nothing lost."""
import json
import os
import shutil
import stat

import pytest

from keyface.recognition.core.gallery_check import check_gallery
from tests.test_cli_gallery import run


def one_line(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.startswith("keyface")]
    return len(lines) >= 1 and "Traceback" not in err and all(len(line) < 400 for line in lines)


def enrolled(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    code, _, _ = run(["enroll", "--name", "Ada", youtube_sample[0][0], youtube_sample[1][0], "--gallery", db, *models],
                     capsys)
    assert code == 0
    return db


def test_cluster_out_never_deletes_or_overwrites_what_is_there(tmp_path, youtube_sample, models, capsys):
    out = tmp_path / "c"
    (out / "cluster-holiday-2019").mkdir(parents=True)
    (out / "cluster-holiday-2019" / "me.jpg").write_bytes(b"mine")
    photos = [p for p, _ in youtube_sample]
    code, _, _ = run(["cluster", *photos, "--out", out, "--threshold", "0.5", *models], capsys)
    assert code == 0 and (out / "cluster-holiday-2019" / "me.jpg").read_bytes() == b"mine"
    sheet = (out / "index.html").read_text()
    assert "<style>" in sheet and " 1 faces" not in sheet and " 1 clusters" not in sheet
    crops = list(out.glob("cluster-0*/*.jpg"))
    assert crops and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in crops + [out / "clusters.json"])
    before = sorted(p.name for p in out.rglob("*"))
    code, _, err = run(["cluster", *photos, "--out", out, "--threshold", "0.5", *models], capsys)
    assert code == 2 and "already exists" in err and one_line(err) and sorted(p.name for p in out.rglob("*")) == before
    (tmp_path / "file").write_text("x")
    code, _, err = run(["cluster", *photos, "--out", tmp_path / "file", "--threshold", "0.5", *models], capsys)
    assert code == 2 and "not a folder" in err and one_line(err)


def test_annotated_copies_never_overwrite_and_are_owner_only(tmp_path, youtube_sample, models, capsys):
    db = enrolled(tmp_path, youtube_sample, models, capsys)
    out = tmp_path / "ann"
    out.mkdir()
    stem = youtube_sample[2][0].stem
    (out / f"{stem}_identified.jpg").write_bytes(b"user's file")
    for _ in range(2):
        code, _, _ = run(["identify", youtube_sample[2][0], "--gallery", db, "--annotate", out, "--threshold", "0.3",
                          *models], capsys)
        assert code == 0
    assert (out / f"{stem}_identified.jpg").read_bytes() == b"user's file"
    made = sorted(out.glob(f"{stem}_identified-*.jpg"))
    assert len(made) == 2 and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in made)


@pytest.mark.parametrize("flags,message", [
    (["--threshold", "nan"], "out of range"), (["--threshold", "-1"], "out of range"), (["--top", "-5"], "out of range"),
    (["--far", "1.5"], "out of range"), (["--gallery", ""], "--gallery is empty"),
    (["--gallery", "/no/such/folder/g.db"], "gallery not found"), (["--min-probability", "2"], "out of range")])
def test_bad_flag_values_get_one_line(tmp_path, youtube_sample, models, capsys, flags, message):
    args = ["identify", youtube_sample[0][0], *models, *flags]
    if "--gallery" not in flags:
        args += ["--gallery", enrolled(tmp_path, youtube_sample, models, capsys)]
    code, out, err = run(args, capsys)
    assert code == 2 and message in err and one_line(err) and out == ""
    assert not os.path.exists("/no/such/folder")


def test_identify_never_creates_a_gallery(tmp_path, youtube_sample, models, capsys):
    code, _, err = run(["identify", youtube_sample[0][0], "--gallery", tmp_path / "new.db", *models], capsys)
    assert code == 2 and "gallery not found" in err and not (tmp_path / "new.db").exists()


def test_a_photo_enrolled_under_another_name_is_refused(tmp_path, youtube_sample, models, capsys):
    db = enrolled(tmp_path, youtube_sample, models, capsys)
    code, out, err = run(["enroll", "--name", "Bob", youtube_sample[0][0], youtube_sample[2][0], "--gallery", db,
                          *models], capsys)
    assert code == 2 and "already enrolled as 'Ada'" in err and "Bob: 1 photo(s) added" in out
    assert check_gallery(db) == []


def test_a_non_utf8_folder_or_file_name_is_one_error_not_the_batch(tmp_path, youtube_sample, models, capsys):
    tree = tmp_path / "people"
    bad_person = os.fsdecode(os.fsencode(str(tree)) + b"/Jos\xe9")
    for person, photo in (("Ada", youtube_sample[0][0]), ("Zed", youtube_sample[1][0])):
        (tree / person).mkdir(parents=True)
        shutil.copy(photo, tree / person / "a.jpg")
    os.makedirs(bad_person)
    shutil.copy(youtube_sample[2][0], os.path.join(bad_person, "b.jpg"))
    shutil.copy(youtube_sample[3][0], os.fsdecode(os.fsencode(str(tree / "Ada")) + b"/caf\xe9.jpg"))
    db = tmp_path / "g.db"
    code, out, err = run(["enroll", "--folders", tree, "--gallery", db, *models], capsys)
    assert code == 2 and "invalid person name" in err and "Traceback" not in err
    assert "Ada: 2 photo(s) added" in out and "Zed: 1 photo(s) added" in out  # people after it still enrolled
    assert check_gallery(db) == []


def test_embedder_and_model_file_must_agree(tmp_path, youtube_sample, models, capsys):
    args = list(models)
    args[args.index("--embedder") + 1] = "keypoints"  # a geometry model file offered as approach A's
    code, _, err = run(["enroll", "--name", "Ada", youtube_sample[0][0], "--gallery", tmp_path / "g.db", *args], capsys)
    assert code == 2 and "is a 'geometry' model, not 'keypoints'" in err and not (tmp_path / "g.db").exists()


def test_a_model_file_with_code_is_refused_in_one_line(tmp_path, youtube_sample, capsys):
    import keras
    from keyface.runtime.networks import save_model
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))
    path = save_model(model, tmp_path / "lambda.keras", {"kind": "embedder", "approach": "geometry",
                                                          "input": {"size": 112, "channels": 1, "zoom": 1.0}})
    code, _, err = run(["embed", youtube_sample[0][0], "--embedder", "geometry", "--embedder-model", path], capsys)
    assert code == 2 and "holds code" in err and "safe_mode" not in err and one_line(err)


def test_check_reports_a_damaged_gallery_and_search_refuses_it(tmp_path, youtube_sample, models, capsys):
    import sqlite3
    import numpy as np
    db = enrolled(tmp_path, youtube_sample, models, capsys)
    assert run(["check", "--gallery", db], capsys)[0] == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE embeddings SET vector = ?", (np.full(8, np.nan, np.float32).tobytes(),))
    code, out, _ = run(["check", "--gallery", db], capsys)
    assert code == 1 and "damaged" in out
    code, _, err = run(["identify", youtube_sample[0][0], "--gallery", db, "--threshold", "0.5", *models], capsys)
    assert code == 2 and "damaged embedding" in err and "keyface reindex" in err and one_line(err)
    json.dumps(err)  # printable


def _hostile_photos(folder):
    """A 1 x 40000 strip, and a photo of 500 tiny faces (12 px, under the smallest face looked for)."""
    import numpy as np
    from PIL import Image
    from keyface.data.images import load_image
    from tests.test_detect_crowd import PROBES
    strip = folder / "strip.png"
    Image.fromarray(np.full((1, 40000, 3), 128, np.uint8)).save(strip)
    faces = [np.asarray(Image.fromarray(load_image(p)[60:200, 60:190]).resize((12, 13))) for p in PROBES]
    crowd = np.full((25 * 20, 20 * 20, 3), 200, np.uint8)
    for i in range(500):
        y, x = divmod(i, 20)
        crowd[y * 20 + 3:y * 20 + 16, x * 20 + 4:x * 20 + 16] = faces[i % len(faces)]
    tiny = folder / "500-tiny-faces.png"
    Image.fromarray(crowd).save(tiny)
    return strip, tiny


@pytest.mark.parametrize("command", ["identify", "keypoints"])
def test_a_strip_and_500_tiny_faces_get_one_line_each(tmp_path, youtube_sample, models, capsys, command):
    import time
    db = enrolled(tmp_path, youtube_sample, models, capsys)
    strip, tiny = _hostile_photos(tmp_path)
    extra = ["--gallery", db, "--threshold", "0.3", *models] if command == "identify" else []  # keypoints: shipped net
    started = time.perf_counter()
    code, out, err = run([command, strip, tiny, *extra], capsys)
    assert time.perf_counter() - started < 60
    assert code != 0 and one_line(err) and "Traceback" not in out + err
    assert "strip.png" in err and "500-tiny-faces.png" in out + err and "no face" in out + err


def test_a_contact_sheet_of_one_face_says_so_in_the_singular(tmp_path):
    import numpy as np
    from types import SimpleNamespace
    from keyface.recognition.cli.cluster import _write_clusters
    face = SimpleNamespace(box=(10.0, 10.0, 50.0, 60.0))
    _write_clusters(tmp_path / "c", [("a.jpg", np.zeros((80, 80, 3), np.uint8), face, None)], np.array([0]), "toy", 0.3)
    sheet = (tmp_path / "c" / "index.html").read_text()
    assert "1 cluster of 1 face" in sheet and "(1 face)" in sheet and "<style>" in sheet
