"""`keyface compare --folders`: the fold split, scoring on synthetic embeddings, and the command on real photos."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from keyface.data.errors import DataError
from keyface.recognition.core.pipeline import l2_normalise
from keyface.recognition.evaluation.compare import Contender
from keyface.recognition.evaluation.folds import make_folds
from keyface.recognition.evaluation.own_people import score_all

DEMO = Path(__file__).resolve().parent.parent / "recognition" / "demo" / "gallery"


def _tree(counts: dict[str, int]) -> dict[str, list[Path]]:
    """{person: photo paths} with the given number of photos each (no files needed to split)."""
    return {p: [Path(f"/tree/{p}/{k}.jpg") for k in range(n)] for p, n in counts.items()}


@pytest.mark.parametrize("k", [3, 4, 5, 9])
def test_a_probe_or_stranger_photo_is_never_enrolled_and_every_photo_is_probed_once(k):
    people = _tree({**{f"p{i}": 2 + i for i in range(7)}, "single_a": 1, "single_b": 1})
    folds = make_folds(people, k, seed=3)
    assert len(folds) == min(k, 7)
    probed, stranger_photos = [], []
    for fold in folds:
        enrolled = {p for _, p in fold.enrol}
        enrolled_people = {n for n, _ in fold.enrol}
        assert not enrolled & {p for _, p in fold.probes + fold.strangers}
        assert not enrolled_people & {n for n, _ in fold.strangers}  # a stranger is nobody enrolled
        assert {n for n, _ in fold.probes} <= enrolled_people  # every probed person keeps enrolled photos
        assert {"single_a", "single_b"} <= {n for n, _ in fold.strangers}
        probed += [p for _, p in fold.probes]
        stranger_photos += [p for n, p in fold.strangers if not n.startswith("single")]
    assert sorted(probed) == sorted(p for n, ps in people.items() if len(ps) > 1 for p in ps)
    assert sorted(stranger_photos) == sorted(p for n, ps in people.items() if len(ps) > 1 for p in ps)
    assert make_folds(people, k, seed=3) == folds  # seeded


def test_more_folds_than_people_says_how_many_it_makes(caplog):
    with caplog.at_level("INFO", logger="keyface.recognition.evaluation.folds"):
        assert len(make_folds(_tree({f"p{i}": 3 for i in range(4)}), 9)) == 4
    assert "4 folds, not 9: as many as there are people with 2 or more photos" in caplog.text


def test_too_few_people_is_refused_with_a_reason():
    with pytest.raises(DataError, match="at least 3 people with 2 or more photos.*found 2.*1 with one photo"):
        make_folds(_tree({"a": 5, "b": 5, "c": 1}))
    with pytest.raises(DataError, match="at least 3, not 2"):
        make_folds(_tree({"a": 5, "b": 5, "c": 5}), k=2)


def test_with_no_stranger_found_every_right_probe_passes_the_1pct_cut():
    from keyface.recognition.evaluation.own_people import pooled_rates
    row = pooled_rates(np.array([0, 0, 1, 0]), np.array([-0.1, -0.2, -0.3, -0.4]), np.full(3, -np.inf), -0.25)
    assert row["rank1"] == row["dir_at_far_1pct"] == 0.75
    assert row["right_at_model_cut"] == 0.5 and row["strangers_named_at_model_cut"] == 0.0


def test_verification_scores_each_pair_once_at_a_cut_chosen_without_its_people(monkeypatch):
    from keyface.recognition.evaluation import own_people
    from keyface.recognition.core.verification import accuracy_at, sample_pairs
    scored = []  # the pairs each fold scores
    monkeypatch.setattr(own_people, "accuracy_at", lambda d, same, cut: scored.append(len(d)) or accuracy_at(d, same, cut))
    rng = np.random.default_rng(4)
    people = {f"p{i}": [Path(f"/tree/p{i}/{k}.jpg") for k in range(5)] for i in range(9)}
    items = [(n, p) for n, ps in people.items() for p in ps]
    vectors = l2_normalise(rng.normal(size=(9, 16))[np.repeat(np.arange(9), 5)] + rng.normal(0, 0.4, (45, 16)))
    found = own_people.verification(vectors, np.ones(45, bool), items, make_folds(people, 3))
    drawn = sample_pairs(np.array([n for n, _ in items], object), 5000, 0)
    # a pair of people in two folds is scored in one of them, not both
    assert len(scored) == 3 and sum(scored) == found["pairs"] == len(drawn) and 0.5 < found["accuracy"] < 1.0


def _contender(name: str, noise: float, centres: np.ndarray) -> Contender:
    """A contender whose vectors are the person's centre plus noise (person index from the path)."""
    rng = np.random.default_rng(1)

    def embed(paths):
        people = np.array([int(Path(p).parent.name[1:]) for p in paths])
        return l2_normalise(centres[people] + rng.normal(0, noise, (len(paths), centres.shape[1]))), np.ones(len(paths), bool)
    return Contender(name, name, "v1", "synthetic", embed, lambda paths: {}, {"model_mb": 1.0},
                     cluster_cut=0.3, identify_cut=0.3)


def test_separable_people_score_perfectly_noisy_ones_do_not_and_heads_learn_only_enrolled_photos(tmp_path):
    centres = np.random.default_rng(0).normal(size=(12, 32))
    people = {f"p{i}": [Path(f"/tree/p{i}/{k}.jpg") for k in range(6 if i < 10 else 1)] for i in range(12)}
    folds = make_folds(people, 4)
    results, missing = score_all([_contender("keypoints", 0.02, centres), _contender("facenet", 3.0, centres)],
                                 folds, keep_models=tmp_path / "kept")
    clean, noisy = results["keypoints"], results["facenet"]
    assert clean["identify"]["rank1"] == 1.0 and clean["identify"]["strangers_named_at_model_cut"] == 0.0
    assert clean["verify"]["accuracy"] == 1.0 and clean["verify"]["auc"] == 1.0
    assert clean["cluster"]["pairwise_f"] == 1.0
    assert noisy["identify"]["rank1"] < 0.7 and noisy["verify"]["auc"] < 0.9
    assert results["keypoints+head"]["identify"]["rank1"] == 1.0 and not missing
    assert "facenet+head" not in results  # only A and B learn your people
    kept = sorted((tmp_path / "kept").glob("*.keras"))
    assert len(kept) == len(folds)
    from keyface.runtime.networks import read_metadata
    for path, fold in zip(kept, folds):
        meta = read_metadata(path, expect_kind="compare-head")
        seen = {p for _, p in meta["photos_seen"]}
        assert seen == {str(p) for _, p in fold.enrol}
        assert not seen & {str(p) for _, p in fold.probes + fold.strangers}


def test_a_contender_that_finds_no_face_anywhere_scores_zero_and_says_why():
    people = {f"p{i}": [Path(f"/tree/p{i}/{k}.jpg") for k in range(4)] for i in range(4)}
    blind = Contender("keypoints", "blind", "v1", "synthetic",
                      lambda paths: (np.zeros((len(paths), 8), np.float32), np.zeros(len(paths), bool)),
                      lambda paths: {}, {}, cluster_cut=0.3, identify_cut=0.3)
    results, missing = score_all([blind], make_folds(people, 3))
    row = results["keypoints"]
    assert row["identify"]["rank1"] == 0.0 and row["identify"]["strangers_named_at_model_cut"] == 0.0
    assert row["photos_no_face"] == 16 and "no face" in row["cluster"]["refused"]
    assert "two people" in missing["keypoints+head"]


def _demo_tree(root: Path) -> Path:
    """4 demo people (5 photos each, one damaged photo more), one person with one photo, an empty folder and a
    file that is not an image."""
    for person in sorted(DEMO.iterdir())[:4]:
        shutil.copytree(person, root / person.name)
    last = sorted(DEMO.iterdir())[-1]
    (root / "One Photo").mkdir()
    shutil.copy(sorted(last.iterdir())[0], root / "One Photo")
    (root / "Nobody").mkdir()
    (root / sorted(DEMO.iterdir())[0].name / "notes.txt").write_text("not a photo")
    (root / sorted(DEMO.iterdir())[1].name / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_compare_folders_from_an_empty_models_directory_lists_every_approach(tmp_path, capsys):
    from keyface.recognition.approaches.registry import EMBEDDER_NAMES
    from keyface.recognition.cli.main import main
    tree, models, out = _demo_tree(tmp_path / "people"), tmp_path / "models", tmp_path / "out"
    models.mkdir()
    assert main(["compare", "--folders", str(tree), "--models", str(models), "--out", str(out), "--folds", "3",
                 "--no-peers", "--keep-models"]) == 0
    report = json.loads((out / "report.json").read_text())
    listed = [a["name"] for a in report["approaches"]]
    assert set(EMBEDDER_NAMES) <= set(listed) and {"keypoints+head", "inception+head"} <= set(listed)
    assert all(name in report["results"] or name in report["missing"] for name in listed)
    assert report["results"]["dlib-resnet"]["identify"]["rank1"] >= 0.9
    assert report["people"] == 5 and report["people_one_photo"] == 1 and report["photos"] == 22
    assert report["results"]["dlib-resnet"]["photos_no_face"] == 1  # the damaged photo: a miss, not a crash
    assert not any(models.iterdir())  # nothing trained in the run lands in the models directory
    assert len(list((out / "models").glob("keypoints-head-fold*.keras"))) == 3
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "C: FaceNet triplets" in page
    assert "| dlib ResNet, converted (outside data) |" in capsys.readouterr().out


def test_compare_folders_on_a_tree_of_one_person_or_no_photos_says_why(tmp_path, capsys):
    from keyface.recognition.cli.main import main
    one = tmp_path / "one"
    shutil.copytree(sorted(DEMO.iterdir())[0], one / "Solo")
    assert main(["compare", "--folders", str(one), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "at least 3 people with 2 or more photos" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty" / "Nobody").mkdir(parents=True)
    assert main(["compare", "--folders", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no person folder with images" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_folders_says_what_its_rates_rest_on_keeps_earlier_reports_and_refuses_a_tree_of_no_faces(
        tmp_path, capsys, caplog):
    from keyface.recognition.cli.main import main
    tree, out = tmp_path / "people", tmp_path / "o"
    for person in sorted(DEMO.iterdir())[:3]:
        shutil.copytree(person, tree / person.name)
    argv = ["compare", "--folders", str(tree), "--embedder", "dlib-resnet", "--no-peers", "--folds", "3"]
    out.mkdir()
    (out / "report.md").write_text("my notes")
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert (out / "report.md").read_text() == "my notes" and "holds an earlier report" in caplog.text
    report = json.loads((tmp_path / "o-2" / "report.json").read_text())
    probes = report["results"]["dlib-resnet"]["identify"]["probes"]
    assert f"a share of {probes} probe photos" in printed.out and "cannot be measured" in printed.out
    assert "| 0 of 15 |" in printed.out  # photos unused: none
    bad = tmp_path / "bad"
    for person in "ABC":
        (bad / person).mkdir(parents=True)
        for k in range(2):
            (bad / person / f"{k}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main([*argv[:2], str(bad), *argv[3:], "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "no face found in any photo" in err and not (tmp_path / "b").exists()
