"""`keyface compare --folders`: every approach scored on the user's own people, k-fold (evaluation.folds).

Each contender embeds every photo of the tree once (its largest face). Identification is pooled over the
folds: a probe is searched among its fold's enrolled photos, a stranger too. Approaches whose point is to
learn the user's people (A's softmax head, B's final layer) get a softmax head fitted on each fold's
enrolled embeddings only, timed. Verification and clustering use the embeddings as they are.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.recognition.core.clustering import cluster_faces, pairwise_scores
from keyface.recognition.core.search import ExactIndex
from keyface.recognition.core.verification import (accuracy_at, best_threshold, distance_auc, pair_distances,
                                                   sample_pairs)
from keyface.recognition.evaluation.compare import Contender, take_items
from keyface.recognition.evaluation.folds import Fold
from keyface.recognition.evaluation.protocols import open_set_rates, truth_ranks
from keyface.recognition.evaluation.report import describe

log = logging.getLogger(__name__)

HEADS = {"keypoints": "A: keypoint net + softmax head trained on your people",
         "inception": "B: Inception-v3, final layer trained on your people"}
MISSED = 4.0  # the distance of a pair with a photo where no face was found: beyond any real one ("different")
# face_recognition's documented tolerance (0.6, Euclidean) as a cosine distance: its raw descriptors are
# ~1.38 long (measured on LFW photos), so |a - b|^2 = 2 * 1.38^2 * (1 - cos) gives ~0.095
PEER_CLUSTER_CUT = 0.6 ** 2 / (2 * 1.38 ** 2)
VERIFY_PROTOCOL = ("every same-person pair of photos (up to 5,000) and as many different-person pairs drawn at "
                   "random (seeded); each fold's threshold is chosen on the pairs of people outside it and scored on "
                   "the pairs touching its people; ROC AUC over every pair of photos (of a seeded 3,000 photos in "
                   "larger trees)")
CLUSTER_PROTOCOL = ("every photo with a face, average linkage cut at the model's calibrated distance (chosen on "
                    "held-out DevTrain people, never on yours); face_recognition at its documented 0.6 tolerance (Euclidean, "
                    "~0.095 as a cosine distance)")


def tree_photos(folds: list[Fold]) -> list[tuple[str, Path]]:
    """Every (person, photo) of the tree once, sorted by path."""
    return sorted({(person, path) for f in folds for person, path in f.enrol + f.probes + f.strangers},
                  key=lambda item: str(item[1]))


def embed_tree(contender: Contender, items: list[tuple[str, Path]]) -> tuple[np.ndarray, np.ndarray, float]:
    """(vectors, found mask, ms per photo end to end) for every photo of the tree."""
    started = time.perf_counter()
    vectors, ok = contender.embed_paths([path for _, path in items])
    return vectors, ok, 1000 * (time.perf_counter() - started) / max(len(items), 1)


def score_embedder(contender: Contender, items: list[tuple[str, Path]], vectors: np.ndarray, ok: np.ndarray,
                   folds: list[Fold]) -> dict:
    """Identification by nearest enrolled person, verification and clustering for one embedder."""
    lookup = {path: i for i, (_, path) in enumerate(items)}
    return {"identify": nearest_identification(vectors, ok, lookup, folds, contender.identify_cut),
            "verify": verification(vectors, ok, items, folds),
            "cluster": clustering(vectors, ok, items, contender.cluster_cut),
            "photos": len(items), "photos_no_face": int((~ok).sum())}


def nearest_identification(vectors: np.ndarray, ok: np.ndarray, lookup: dict, folds: list[Fold],
                           cut: float | None) -> dict:
    """Each fold's probes and strangers searched among its enrolled faces; the rates pooled over folds."""
    ranks, confidence, strangers = [], [], []
    for fold in folds:
        g_v, g_ok, g_names = take_items(vectors, ok, lookup, fold.enrol)
        p_v, p_ok, p_names = take_items(vectors, ok, lookup, fold.probes)
        s_v, s_ok, _ = take_items(vectors, ok, lookup, fold.strangers)
        if not g_ok.any():  # no enrolled photo had a face: every probe is a miss, no stranger is named
            ranks += [99] * len(p_ok)
            confidence += [-np.inf] * len(p_ok)
            strangers += [-np.inf] * len(s_ok)
            continue
        index = ExactIndex(g_v[g_ok], g_names[g_ok])
        ranked = index.search(p_v, k=10)
        ranks += truth_ranks(ranked, p_names, p_ok).tolist()
        confidence += [-ms[0].distance if ms and found else -np.inf for ms, found in zip(ranked, p_ok)]
        strangers += [-ms[0].distance if ms and found else -np.inf for ms, found in zip(index.search(s_v, k=1), s_ok)]
    return pooled_rates(np.array(ranks), np.array(confidence), np.array(strangers), None if cut is None else -cut)


def pooled_rates(ranks: np.ndarray, confidence: np.ndarray, strangers: np.ndarray, cut: float | None) -> dict:
    """Rank-1, CMC, DIR@1%FAR and, at the model's own cut, probes named right and strangers named."""
    # confidence: minus a distance, or a probability; cut in the same units
    row = open_set_rates(ranks == 0, confidence, strangers, None if cut is None else {"model_cut": cut})
    del row["cut_1pct"]
    row.update({"cmc": [float((ranks < k).mean()) for k in range(1, 11)], "probes": int(len(ranks)),
                "strangers": int(len(strangers))})
    if cut is not None:
        row["model_cut"] = float(abs(cut))
    return row


def head_identification(vectors: np.ndarray, ok: np.ndarray, items: list, folds: list[Fold],
                        save_to: Path | None = None, provenance: dict | None = None) -> dict:
    """Open-set identification by a softmax head fitted on each fold's enrolled embeddings only."""
    # rank-1 by the most probable person, open set by the top probability; heads saved only to `save_to`
    from tqdm import tqdm
    from keyface.recognition.core.head import fit_head
    lookup = {path: i for i, (_, path) in enumerate(items)}
    ranks, confidence, strangers, seconds = [], [], [], 0.0
    for fold in tqdm(folds, desc="softmax heads", unit="fold"):
        g_v, g_ok, g_names = take_items(vectors, ok, lookup, fold.enrol)
        started = time.perf_counter()
        model, people = fit_head(g_v[g_ok], g_names[g_ok])
        seconds += time.perf_counter() - started
        p_ranks, p_top = _head_answers(model, people, *take_items(vectors, ok, lookup, fold.probes))
        _, s_top = _head_answers(model, people, *take_items(vectors, ok, lookup, fold.strangers))
        ranks, confidence, strangers = ranks + p_ranks, confidence + p_top, strangers + s_top
        if save_to is not None:
            seen = [item for item, found in zip(fold.enrol, g_ok) if found]  # a photo with no face taught it nothing
            _save_head(model, people, fold.index, seen, save_to, provenance or {})
    row = pooled_rates(np.array(ranks), np.array(confidence), np.array(strangers), None)
    return {**row, "train_seconds": seconds, "folds": len(folds)}


def _head_answers(model, people: np.ndarray, vectors, found, names) -> tuple[list[int], list[float]]:
    """Where each face's person ranks among the head's answers (99: nowhere), and the top probability."""
    if not len(vectors):
        return [], []
    probs = np.asarray(model(vectors.astype(np.float32), training=False))
    order = people[np.argsort(-probs, axis=1)]
    ranks = [int(np.flatnonzero(o == t)[0]) if f and t in people else 99 for o, t, f in zip(order, names, found)]
    return ranks, np.where(found, probs.max(1), -np.inf).tolist()


def _save_head(model, people: np.ndarray, fold: int, seen: list, folder: Path, provenance: dict) -> Path:
    """One fold's head, with the people and photos it was fitted on (asked for with --keep-models)."""
    from keyface.runtime.networks import save_model
    meta = {"kind": "compare-head", **provenance, "fold": fold, "people": people.tolist(),
            "photos_seen": [[n, str(p)] for n, p in seen]}
    path = save_model(model, folder / f"{provenance.get('embedder', 'head')}-head-fold{fold}.keras", meta,
                      mode=0o600)  # fitted on the user's faces
    return path


def person_folds(folds: list[Fold], items: list[tuple[str, Path]]) -> dict[str, int]:
    """The fold of each person: the one that leaves them out; people with one photo dealt in turn."""
    fold_of = {p: f.index for f in folds for p in f.left_out}
    singles = sorted({n for n, _ in items} - set(fold_of))
    fold_of.update({p: i % len(folds) for i, p in enumerate(singles)})
    return fold_of


def verification(vectors: np.ndarray, ok: np.ndarray, items: list, folds: list[Fold]) -> dict:
    """Balanced pairs, each scored once: in the fold of its first photo's person, at a threshold chosen on the
    pairs of no one in that fold; AUC over all pairs."""
    names = np.array([n for n, _ in items], object)
    pairs = sample_pairs(names, 5000, 0)
    if not len(pairs) or pairs[:, 2].all():
        return {"refused": "no pair of photos of one person, or of two people"}
    d = np.where(ok[pairs[:, 0]] & ok[pairs[:, 1]], pair_distances(vectors[pairs[:, 0]], vectors[pairs[:, 1]]), MISSED)
    fold_of = person_folds(folds, items)
    pair_folds = np.array([[fold_of[names[i]], fold_of[names[j]]] for i, j, _ in pairs])
    right, scored, same = 0.0, 0, pairs[:, 2].astype(bool)
    for f in range(len(folds)):
        test, chooser = pair_folds[:, 0] == f, (pair_folds != f).all(1)  # the chooser's pairs share no one with f
        if not test.any() or chooser.sum() < 2:
            continue
        right += accuracy_at(d[test], same[test], best_threshold(d[chooser], same[chooser])) * test.sum()
        scored += int(test.sum())
    if not scored:
        return {"refused": "too few people to choose a threshold on some and score it on others"}
    all_d, all_same = _all_pairs(vectors, ok, names)
    return {"accuracy": right / scored, "pairs": scored, "auc": distance_auc(all_d, all_same),
            "roc": _roc(all_d, all_same)}


def _all_pairs(vectors: np.ndarray, ok: np.ndarray, names: np.ndarray, limit: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance and truth of every pair of photos (of a seeded `limit` photos in larger trees)."""
    keep = np.arange(len(names))
    if len(keep) > limit:
        keep = np.sort(np.random.default_rng(0).choice(keep, limit, replace=False))
    i, j = np.triu_indices(len(keep), 1)
    a, b = keep[i], keep[j]
    d = np.where(ok[a] & ok[b], pair_distances(vectors[a], vectors[b]), MISSED)
    return d, names[a] == names[b]


def _roc(distances: np.ndarray, same: np.ndarray) -> dict:
    """The ROC curve, thinned to ~200 points for the report."""
    from sklearn.metrics import roc_curve
    fpr, tpr, _ = roc_curve(same.astype(int), -distances)
    step = max(1, len(fpr) // 200)
    return {"fpr": fpr[::step].tolist(), "tpr": tpr[::step].tolist()}


def clustering(vectors: np.ndarray, ok: np.ndarray, items: list, cut: float | None) -> dict:
    """Every photo with a face, clustered at the model's calibrated cut; pairwise F against the folders."""
    if cut is None:
        return {"refused": "the model carries no calibrated clustering cut"}
    if not ok.any():
        return {"refused": "no face found in any photo"}
    names = np.array([n for n, _ in items], object)[ok]
    return {**pairwise_scores(names, cluster_faces(vectors[ok], cut)), "threshold": float(cut)}


def score_all(contenders: list[Contender], folds: list[Fold], keep_models: Path | None = None) -> tuple[dict, dict]:
    """Every contender (and the heads of A and B) scored on the folds: (results, why each head is missing)."""
    items = tree_photos(folds)
    results, missing = {}, {}
    for contender in contenders:
        vectors, ok, ms = embed_tree(contender, items)
        results[contender.name] = {**score_embedder(contender, items, vectors, ok, folds), "ms_per_photo": ms}
        if contender.name not in HEADS:
            continue
        provenance = {"embedder": contender.name, "embedder_version": contender.version}
        try:
            head = head_identification(vectors, ok, items, folds, keep_models, provenance)
        except KeyfaceError as exc:  # e.g. fewer than two people with a face in a fold
            missing[f"{contender.name}+head"] = str(exc)
            continue
        results[f"{contender.name}+head"] = {"identify": head, "ms_per_photo": ms}
    return results, missing


def folder_contenders(names: list[str], models: str | None, keypoint_model: str | None, detector: str,
                      precision: str | None, peer: bool) -> tuple[list[Contender], list[dict], dict]:
    """(the contenders that can run, every approach the report lists, why each missing one is missing)."""
    from keyface.recognition.approaches.registry import REGISTRY
    from keyface.recognition.evaluation.contenders import face_recognition_contender, load_keyface_contender
    contenders, approaches, missing = [], [], {}
    for name in names:
        reg = REGISTRY[name]
        try:
            contender = load_keyface_contender(name, models, keypoint_model, detector, precision, largest_face=True)
            contenders.append(contender)
            approaches.append(describe(contender))
        except KeyfaceError as exc:
            missing[name] = str(exc)
            approaches.append({"name": name, "label": reg.label or name, "trained_on": reg.description})
        if name in HEADS:
            approaches.append({"name": f"{name}+head", "label": HEADS[name], "trained_on":
                               f"{approaches[-1]['label']} embeddings; a softmax head fitted on each fold's enrolled "
                               "photos of your people, in this run"})
            if name in missing:
                missing[f"{name}+head"] = f"needs the {name} embedder"
    found = face_recognition_contender(largest_face=True) if peer else None
    if found is not None:
        found.cluster_cut = PEER_CLUSTER_CUT
        contenders.append(found)
        approaches.append(describe(found))
    return contenders, approaches, missing
