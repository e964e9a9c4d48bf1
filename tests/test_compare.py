"""`keyface compare` scoring and report on synthetic embeddings: protocols, caching, the written report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keyface.data.lfw import Pair
from keyface.recognition.evaluation.compare import Contender, cached_score
from keyface.recognition.core.pipeline import l2_normalise
from keyface.runtime.networks import file_version
from keyface.recognition.evaluation.report import markdown_table, write_report


def _sets(tmp_path: Path) -> dict:
    """Photos of 30 people (6 each) as paths; pairs and protocol lists drawn from them like LFW's."""
    photos = {f"p{i:02d}": [tmp_path / f"p{i:02d}_{k}.jpg" for k in range(6)] for i in range(30)}
    names = sorted(photos)

    def pairs(people):
        same = [Pair(photos[n][0], photos[n][1], n, n, True) for n in people]
        diff = [Pair(photos[a][2], photos[b][3], a, b, False) for a, b in zip(people, people[1:] + people[:1])]
        return same + diff
    return {"view1_train": pairs(names[:10]), "view1_test": pairs(names[10:20]),
            "view2": [pairs(names[20 + 2 * k: 22 + 2 * k]) for k in range(5)],
            "enrol": [(n, p) for n in names[10:20] for p in photos[n][:3]],
            "probes": [(n, p) for n in names[10:20] for p in photos[n][3:]],
            "strangers": [(n, photos[n][5]) for n in names[20:]],
            "cluster": [(n, p) for n in names[10:20] for p in photos[n]],
            "cluster_calibration": [(n, p) for n in names[:10] for p in photos[n]]}


def _contender(noise: float, calls: list) -> Contender:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 16))

    def embed(paths):
        calls.append(len(paths))
        people = np.array([int(Path(p).name[1:3]) for p in paths])
        return l2_normalise(centres[people] + rng.normal(0, noise, (len(paths), 16))), np.ones(len(paths), bool)
    facts = {"model_mb": 1.0, "bytes_per_face": 64, "train_seconds": 60.0, "new_person_needs_retraining": "no"}
    return Contender(f"synthetic{noise}", f"synthetic {noise}", "v1", "synthetic", embed,
                     lambda paths: {"embedding": 1.0, "end_to_end": 1.0}, facts, view2=True)


def test_separable_people_score_perfectly_and_results_are_cached(tmp_path):
    calls = []
    sets = _sets(tmp_path)
    result = cached_score(_contender(0.05, calls), sets, tmp_path / "cache", "abc")
    assert result["view1"]["accuracy"] == 1.0 and result["view1"]["eer"] == 0.0
    assert result["identify"]["rank1"] == 1.0 and result["identify"]["cmc"][-1] == 1.0
    assert result["cluster"]["pairwise_f"] == 1.0 and result["view2"]["accuracy"] == 1.0
    again = cached_score(_contender(0.05, calls), sets, tmp_path / "cache", "abc")
    assert again == json.loads(json.dumps(result)) and len(calls) == 1  # the second run re-scored nothing
    noisy = cached_score(_contender(3.0, calls), sets, tmp_path / "cache", "abc")
    assert noisy["view1"]["auc"] < 0.9 and noisy["identify"]["rank1"] < 0.8  # the scores can fall


def test_report_has_tables_curves_and_provenance(tmp_path):
    sets, calls = _sets(tmp_path), []
    contender = _contender(0.05, calls)
    result = cached_score(contender, sets, tmp_path / "cache", "abc")
    report = {"created": "now", "git_revision": "abc123", "command": "keyface compare", "threads": 1,
              "seeds": {"all": 0}, "data_checksums": {"x": "1"}, "protocols": {"View 1": "..."},
              "contenders": [{"name": contender.name, "label": contender.label, "trained_on": "synthetic",
                              "precision": "int8", "detector": "blazeface", **contender.facts}],
              "results": {contender.name: result}}
    write_report(tmp_path / "out", report)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| synthetic 0.05 | 1.000 |" in md and "abc123" in md and "1.000 ± 0.000" in markdown_table(report)
    assert "- synthetic 0.05: synthetic; run in int8 with blazeface detection" in md
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    assert json.loads((tmp_path / "out" / "report.json").read_text())["git_revision"] == "abc123"


def test_cached_results_go_stale_when_the_keypoint_model_or_scoring_code_changes(tmp_path, monkeypatch):
    from keyface.recognition.evaluation import compare
    from keyface.recognition.evaluation.contenders import contender_version
    from keyface.keypoints.predictor import KeypointPredictor
    kp_a, kp_b = tmp_path / "a.keras", tmp_path / "b.keras"
    kp_a.write_bytes(b"keypoint model a")
    kp_b.write_bytes(b"keypoint model b")
    keypoints = [KeypointPredictor(None, None, 96, 3, {}, kp, precision).version
                 for kp in (kp_a, kp_b) for precision in ("float32", "int8")]
    versions = {contender_version("emb1", kp, detector) for kp in keypoints for detector in ("blazeface", "mtcnn")}
    assert len(versions) == 8  # the keypoint model, its precision and the detector each change what was scored
    assert keypoints[0] == file_version(kp_a)  # float32 keeps the bare version that caches made before int8 have
    sets, calls = _sets(tmp_path), []
    contender = _contender(0.05, calls)
    cached_score(contender, sets, tmp_path / "cache", "abc")
    contender.version = contender_version("v1", keypoints[2], "blazeface")  # same embedder, another keypoint model
    cached_score(contender, sets, tmp_path / "cache", "abc")
    assert len(calls) == 2
    monkeypatch.setattr(compare, "scoring_version", lambda: "other-code")
    cached_score(contender, sets, tmp_path / "cache", "abc")
    assert len(calls) == 3
    cached_score(contender, sets, tmp_path / "cache", "abc")
    assert len(calls) == 3  # unchanged inputs: the cache serves it
