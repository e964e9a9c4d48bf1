"""`keyface compare`: every approach on the same LFW photos and protocols, one report.

Each contender turns a list of photo paths into unit vectors (its central face) and is scored on
the same embeddings by every protocol. Results are cached per model version (embedder and keypoint
model), scoring code and data checksum, so re-running after training one approach re-scores only that one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.files import write_whole
from keyface.recognition.core.clustering import best_cluster_threshold, cluster_faces, pairwise_scores
from keyface.recognition.core.search import nearest_people
from keyface.recognition.core.verification import (accuracy_at, best_threshold, distance_auc, kfold_accuracy,
                                                   pair_distances, tar_at_far)
from keyface.recognition.evaluation.protocols import colleagues, devtest_cluster_items, identify_scores, truth_ranks

log = logging.getLogger(__name__)

VIEW2_REFUSED = ("trained on LFW DevTrain people, who appear in the View 2 folds; retraining per fold is not "
                 "affordable on 2 CPU cores, so only View 1 (identity-disjoint) is reported")


@dataclass
class Contender:
    """One approach as the comparison sees it: how it embeds photos, and what it costs."""
    name: str
    label: str
    version: str
    trained_on: str
    embed_paths: Callable[[list[Path]], tuple[np.ndarray, np.ndarray]]
    stage_ms: Callable[[list[Path]], dict]
    facts: dict = field(default_factory=dict)  # model MB, bytes per face, training time, retraining
    view2: bool = False  # scored on View 2 only when it never trained on LFW people
    cluster_cut: float | None = None  # calibrated on held-out DevTrain people; None: choose one here
    identify_cut: float | None = None  # the model's stored open-set cut (1% of held-out strangers named)


def protocol_sets(lfw) -> dict:
    """The photo lists of every protocol."""
    enrol, probes, strangers = colleagues(lfw)
    cluster = devtest_cluster_items(lfw)
    devtrain = sorted(n for n, k in lfw.image_count("DevTrain").items() if k >= 2)
    picked = np.random.default_rng(0).choice(devtrain, len(devtrain) // 10, replace=False)
    calibration = [(person, p) for person in sorted(picked) for p in lfw.images_of(person)]
    return {"view1_train": lfw.view1_pairs("DevTrain"), "view1_test": lfw.view1_pairs("DevTest"),
            "view2": lfw.view2_folds(), "enrol": enrol, "probes": probes, "strangers": strangers, "cluster": cluster,
            "cluster_calibration": calibration}


def data_checksum(sets: dict, with_view2: bool) -> str:
    """SHA-256 over the protocol's photo bytes in order: any changed photo changes it."""
    digest = hashlib.sha256()
    for path in sorted({str(p) for p in protocol_photos(sets, with_view2)}):
        digest.update(path.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def protocol_photos(sets: dict, with_view2: bool) -> list[Path]:
    """Every photo the protocols use (View 2 and the clustering calibration only for outside models)."""
    pairs = sets["view1_train"] + sets["view1_test"] + (sum(sets["view2"], []) if with_view2 else [])
    paths = {p for pair in pairs for p in (pair.path_a, pair.path_b)}
    for key in ("enrol", "probes", "strangers", "cluster") + (("cluster_calibration",) if with_view2 else ()):
        paths |= {p for _, p in sets[key]}
    return sorted(paths)


def score(contender: Contender, sets: dict) -> dict:
    """Every protocol on one contender's embeddings."""
    paths = protocol_photos(sets, contender.view2)
    vectors, ok = contender.embed_paths(paths)
    lookup = {p: i for i, p in enumerate(paths)}
    result = {"view1": view1_scores(vectors, ok, lookup, sets), "photos_no_face": int((~ok).sum())}
    result["view2"] = view2_scores(vectors, ok, lookup, sets["view2"]) if contender.view2 else {"refused": VIEW2_REFUSED}
    result["identify"] = identification(vectors, ok, lookup, sets, contender.identify_cut)
    result["cluster"] = clustering(vectors, ok, lookup, sets, contender.cluster_cut)
    result["cost"] = contender.stage_ms([p for _, p in sets["probes"]][:30])
    return result


def _pair_distances(vectors, ok, lookup, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance per pair (4, beyond any real one, where a face was missed) and truth."""
    a = np.array([lookup[p.path_a] for p in pairs])
    b = np.array([lookup[p.path_b] for p in pairs])
    d = np.where(ok[a] & ok[b], pair_distances(vectors[a], vectors[b]), 4.0)
    return d, np.array([p.same for p in pairs])


def view1_scores(vectors, ok, lookup, sets) -> dict:
    """Threshold on pairsDevTrain; accuracy, AUC, EER, TAR@FAR=1e-3 and the ROC on pairsDevTest."""
    from sklearn.metrics import roc_curve
    train_d, train_same = _pair_distances(vectors, ok, lookup, sets["view1_train"])
    d, same = _pair_distances(vectors, ok, lookup, sets["view1_test"])
    threshold = best_threshold(train_d.clip(max=4.0), train_same)
    fpr, tpr, _ = roc_curve(same, -d)
    eer = float(fpr[np.nanargmin(np.abs(fpr - (1 - tpr)))])
    return {"accuracy": accuracy_at(d, same, threshold), "auc": distance_auc(d, same), "eer": eer,
            "tar_at_far_1e-3": tar_at_far(d, same, 1e-3), "threshold": threshold,
            "roc": {"fpr": fpr[:: max(1, len(fpr) // 200)].tolist(), "tpr": tpr[:: max(1, len(tpr) // 200)].tolist()}}


def view2_scores(vectors, ok, lookup, folds) -> dict:
    """The 10 folds of pairs.txt, each fold's threshold chosen on the other nine."""
    all_pairs = sum(folds, [])
    d, same = _pair_distances(vectors, ok, lookup, all_pairs)
    sizes = np.cumsum([0] + [len(f) for f in folds])
    mean, std = kfold_accuracy(d, same, [np.arange(sizes[k], sizes[k + 1]) for k in range(len(folds))])
    return {"accuracy": mean, "std": std}


def take_items(vectors: np.ndarray, ok: np.ndarray, lookup: dict, items: list) -> tuple:
    """Vectors, found mask and names of (person, path) items, from every photo's row (`lookup`: path -> row)."""
    idx = np.array([lookup[p] for _, p in items], int)
    return vectors[idx], ok[idx], np.array([n for n, _ in items], object)


def identification(vectors, ok, lookup, sets, model_cut: float | None = None) -> dict:
    """The colleagues protocol, plus the CMC curve (rank-k identification rate, k = 1..10)."""
    g_v, g_ok, g_names = take_items(vectors, ok, lookup, sets["enrol"])
    p_v, p_ok, p_names = take_items(vectors, ok, lookup, sets["probes"])
    s_v, s_ok, _ = take_items(vectors, ok, lookup, sets["strangers"])
    row = identify_scores(g_v[g_ok], g_names[g_ok], p_v, p_names, p_ok, s_v, s_ok, model_cut)
    ranks = truth_ranks(nearest_people(p_v, g_v[g_ok], g_names[g_ok], k=10), p_names, p_ok)
    row["cmc"] = [float((ranks < k).mean()) for k in range(1, 11)]
    return row


def clustering(vectors, ok, lookup, sets, cut: float | None) -> dict:
    """DevTest people with 2+ photos, cut at the model's calibrated distance; a model without one (an
    outside peer) gets the cut with the best pairwise F on a seeded 10% of DevTrain people instead."""
    if cut is None:
        calib = [(n, p) for n, p in sets["cluster_calibration"] if ok[lookup[p]]]
        cut = best_cluster_threshold(vectors[[lookup[p] for _, p in calib]], np.array([n for n, _ in calib], object))
    test = [(n, p) for n, p in sets["cluster"] if ok[lookup[p]]]
    labels = cluster_faces(vectors[[lookup[p] for _, p in test]], cut)
    return {**pairwise_scores(np.array([n for n, _ in test], object), labels), "threshold": cut}


SCORING_MODULES = ("keyface.recognition.evaluation.compare", "keyface.recognition.evaluation.protocols",
                   "keyface.recognition.core.verification", "keyface.recognition.core.clustering",
                   "keyface.recognition.core.search", "keyface.recognition.core.open_set")


def scoring_version() -> str:
    """A hash of the scoring code: a cached result made by other scoring code is not reused."""
    import importlib.util
    digest = hashlib.sha256()
    for name in SCORING_MODULES:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()[:10]


def cached_score(contender: Contender, sets: dict, cache_dir: Path, checksum: str) -> dict:
    """score(), stored per contender, model versions (the contender's own, which for keyface's names the
    keypoint model too), scoring code and data checksum."""
    path = cache_dir / f"{contender.name}-{contender.version}-{scoring_version()}-{checksum}.json"
    if path.is_file():
        log.info("%s: cached result %s", contender.name, path.name)
        return json.loads(path.read_text())
    started = time.perf_counter()
    result = score(contender, sets)
    result["scoring_seconds"] = time.perf_counter() - started
    write_whole(path, lambda tmp: tmp.write_text(json.dumps(result)))  # never read half written
    return result
