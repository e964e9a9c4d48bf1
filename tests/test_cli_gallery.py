"""The gallery commands end to end on real photos (tiny untrained keypoint net, geometry embedder)."""
import json
import shutil

import numpy as np
import pytest

from recognition.cli import main
from tests.badimages import write_bad_files
from tests.test_embedders import synthetic_faces


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny keypoint net and a geometry embedder fitted on synthetic shapes: plumbing, not accuracy."""
    import keras
    from keypoints.modelfile import save_model
    from keypoints.models import ModelConfig, build_model
    from recognition.geometry import fit_geometry
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("models")
    cfg = ModelConfig(width=8, embedding_dim=32)
    kp = save_model(build_model(cfg), folder / "kp.keras",
                    {"kind": "keypoints", "scheme": "ibug68", "config": {"model": cfg.to_dict()}})
    geo = fit_geometry(synthetic_faces(size=112), 8, folder / "geometry.keras", "synthetic")
    return ["--keypoint-model", str(kp), "--embedder", "geometry", "--embedder-model", str(geo)]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_enrol_identify_people_rename_remove(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    (a, _), (b, _), (c, _), (d, _) = youtube_sample
    code, out, _ = run(["enroll", "--name", "Kristen Breitweiser", a, "--gallery", db, *models], capsys)
    assert code == 0 and "1 photo(s) added" in out
    code, out, _ = run(["enroll", "--name", "Kristen Breitweiser", a, "--gallery", db, *models], capsys)
    assert code == 0 and "0 photo(s) added" in out  # the same photo twice changes nothing
    run(["enroll", "--name", "Luis Fonsi", c, "--gallery", db, *models], capsys)
    code, out, _ = run(["identify", a, "--gallery", db, "--json", "--threshold", "2", *models], capsys)
    face = json.loads(out)["photos"][0]["faces"][0]
    assert code == 0 and face["name"] == "Kristen Breitweiser" and face["matches"][0]["distance"] < 1e-4
    code, out, _ = run(["people", "--gallery", db, "--json"], capsys)
    assert json.loads(out) == [{"name": "Kristen Breitweiser", "photos": 1}, {"name": "Luis Fonsi", "photos": 1}]
    assert run(["rename", "Luis Fonsi", "Luis", "--gallery", db], capsys)[0] == 0
    assert run(["remove", "Luis", "--gallery", db], capsys)[0] == 0
    assert json.loads(run(["people", "--gallery", db, "--json"], capsys)[1]) == [{"name": "Kristen Breitweiser", "photos": 1}]


def test_unknown_beyond_threshold_and_verify(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    code, out, _ = run(["identify", youtube_sample[2][0], "--gallery", db, "--json", "--threshold", "-1", *models], capsys)
    assert code == 0 and json.loads(out)["photos"][0]["faces"][0]["name"] == "unknown"
    code, out, _ = run(["verify", youtube_sample[0][0], youtube_sample[0][0], "--json", *models], capsys)
    result = json.loads(out)
    assert code == 0 and result["same"] and result["distance"] < 1e-4


def test_embed_gives_unit_vectors(youtube_sample, models, capsys):
    code, out, _ = run(["embed", youtube_sample[1][0], *models], capsys)
    face = json.loads(out)[0]["faces"][0]
    assert code == 0 and abs(np.linalg.norm(face["embedding"]) - 1) < 1e-4 and len(face["keypoints"]) == 68


def test_gallery_of_another_embedder_is_refused_and_untouched(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    from recognition.gallery import read_meta, read_photos
    before = (read_meta(db), read_photos(db))
    other = [m if m != "geometry" else "keypoints" for m in models]
    other[other.index("--embedder-model") + 1] = str(tmp_path / "missing.keras")
    code, _, err = run(["identify", youtube_sample[0][0], "--gallery", db, *other], capsys)
    assert code == 2 and "Traceback" not in err and (read_meta(db), read_photos(db)) == before
    from recognition.gallery import Gallery, GalleryError
    with pytest.raises(GalleryError, match="reindex"):
        Gallery(db, "keypoints", "v0", 8)


@pytest.mark.parametrize("bad", ["not_image.jpg", "truncated.jpg", "bomb.png"])
def test_bad_photos_enrol_nothing_and_say_why(tmp_path, bad, models, capsys):
    db = tmp_path / "g.db"
    photo = write_bad_files(tmp_path / "bad")[bad]
    code, _, err = run(["enroll", "--name", "X", photo, "--gallery", db, *models], capsys)
    assert code == 2 and bad in err and "Traceback" not in err
    assert json.loads(run(["people", "--gallery", db, "--json"], capsys)[1]) == []


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


def test_train_head_then_identify_with_it(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], youtube_sample[1][0], "--gallery", db, *models], capsys)
    run(["enroll", "--name", "Luis", youtube_sample[2][0], youtube_sample[3][0], "--gallery", db, *models], capsys)
    code, out, err = run(["identify", youtube_sample[0][0], "--head", "--gallery", db, *models], capsys)
    assert code == 2 and "train-head" in err
    assert run(["train-head", "--gallery", db, *models], capsys)[0] == 0
    code, out, _ = run(["identify", youtube_sample[0][0], "--head", "--json", "--gallery", db, *models], capsys)
    assert code == 0 and json.loads(out)["photos"][0]["faces"][0]["name"] == "Kristen"


def test_demo_runs_offline_on_the_shipped_sample(tmp_path, models, capsys):
    code, out, _ = run(["demo", "--out", tmp_path / "demo", *models], capsys)
    assert code == 0 and "held-out photos right" in out
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.count("<figure") == 20 and (tmp_path / "demo" / "demo-gallery.db").is_file()
    assert len(list((tmp_path / "demo" / "photos").glob("*.jpg"))) == 20
