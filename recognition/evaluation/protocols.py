"""The LFW protocols of `keyface bench`: identify (DevTest "colleagues"), verify (View 1) and cluster."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.images import load_image
from keyface.detection.cache import detect_cached
from keyface.recognition.core.clustering import cluster_faces, cluster_threshold, pairwise_scores
from keyface.recognition.core.search import ExactIndex
from keyface.recognition.core.verification import accuracy_at, best_threshold, distance_auc, pair_distances, tar_at_far
from keyface.recognition.training.face_sets import align_central

log = logging.getLogger(__name__)

IDENTIFY_PROTOCOL = ("LFW DevTest people with >= 10 photos: the first 5 (file order) enrolled, the rest are "
                     "probes; every DevTest person with a single photo is a stranger probe who should come out "
                     "unknown. The labelled face is the detection nearest the photo centre; a photo with no "
                     "detection counts as a miss. Every model scored here trained on DevTrain people only.")
VERIFY_PROTOCOL = ("LFW View 1: threshold chosen for best accuracy on pairsDevTrain (2,200 pairs), scored on "
                   "pairsDevTest (1,000 pairs); a pair with an undetected face counts as 'different'. "
                   "DevTest people are disjoint from every model's training people. 'DevTrain' columns score "
                   "pairsDevTrain at its own threshold: a fair choice of settings only for a model that never "
                   "trained on LFW (dlib-resnet).")


def embed_photos(rec, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings (N, D) of each photo's central face (cached detections); mask of photos with a face."""
    from tqdm import tqdm
    found = detect_cached(paths, rec.pipeline.detector)
    vectors = np.zeros((len(paths), rec.embedder.dim), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, path in enumerate(tqdm(paths, desc=f"embedding ({rec.embedder.name})", unit="photo")):
        batch = align_central(load_image(path), found[path], rec.pipeline, rec.embedder.spec)
        if batch is not None:
            vectors[i], ok[i] = rec.embedder.embed(batch)[0], True
    return vectors, ok


def colleagues(lfw) -> tuple[list, list, list]:
    """(enrol, probes, strangers) as lists of (person, path) by the colleagues protocol."""
    counts = lfw.image_count("DevTest")
    enrol, probes, strangers = [], [], []
    for person, n in counts.items():
        photos = lfw.images_of(person)
        if n >= 10:
            enrol += [(person, p) for p in photos[:5]]
            probes += [(person, p) for p in photos[5:]]
        elif n == 1:
            strangers += [(person, photos[0])]
    return enrol, probes, strangers


def identify_scores(gallery_v, gallery_names, probe_v, probe_names, probe_ok, stranger_v, stranger_ok,
                    model_cut: float | None = None, pair_cut: float | None = None) -> dict:
    """Rank-1, the open-set identification rate at 1% false alarms (cut chosen on these strangers) and, at the
    model's stored cut (and at its pair threshold, if given), the probes named right and the strangers named."""
    index = ExactIndex(gallery_v, gallery_names)
    best = index.search(probe_v, k=1)
    right = np.array([bool(m) and m[0].person == truth for m, truth in zip(best, probe_names)]) & probe_ok
    confidence = np.array([-m[0].distance if m else -np.inf for m in best])
    strangers = np.full(len(stranger_ok), -np.inf)  # a stranger with no face raises no alarm
    strangers[stranger_ok] = [-m[0].distance for m in index.search(stranger_v[stranger_ok], k=1)]
    cuts = {name: -cut for name, cut in (("model_cut", model_cut), ("pair_threshold", pair_cut)) if cut is not None}
    rates = open_set_rates(right, confidence, strangers, cuts)
    threshold = -rates.pop("cut_1pct")  # back to a distance
    row = {**rates, "threshold_far_1pct": threshold, "probes": int(len(probe_ok)),
           "probes_no_face": int((~probe_ok).sum()), "strangers": int(len(stranger_ok)),
           "enrolled_people": int(len(np.unique(gallery_names)))}
    if model_cut is not None:
        row["model_cut"] = float(model_cut)
    return row


def open_set_rates(right: np.ndarray, confidence: np.ndarray, strangers: np.ndarray,
                   cuts: dict[str, float] | None = None) -> dict:
    """Rank-1, DIR@1%FAR and, at each named cut, the probes named right and the strangers named."""
    # confidence: minus a distance, or a probability, -inf where no face was found; the 1% cut is chosen on
    # these strangers, and with no stranger's face found there is nothing to pass
    alarming = np.sort(strangers[np.isfinite(strangers)])[::-1]
    at_1pct = cut_passing_1pct(alarming, len(strangers), -np.inf)
    row = {"rank1": float(right.mean()), "dir_at_far_1pct": float((right & (confidence > at_1pct)).mean()),
           "cut_1pct": float(at_1pct)}
    for name, cut in (cuts or {}).items():
        row[f"right_at_{name}"] = float((right & (confidence >= cut)).mean())
        row[f"strangers_named_at_{name}"] = float((strangers >= cut).mean()) if len(strangers) else 0.0
    return row


def truth_ranks(ranked: list, truths, found: np.ndarray) -> np.ndarray:
    """Where each probe's own person stands among its ranked matches (0: first; 99: not among them, or no face)."""
    ranks = np.array([next((r for r, m in enumerate(ms) if m.person == t), 99) for ms, t in zip(ranked, truths)], int)
    ranks[~np.asarray(found, bool)] = 99
    return ranks


def cut_passing_1pct(scores: np.ndarray, strangers: int, none: float) -> float:
    """The cut that lets 1% of strangers through, from their scores ordered most-alarming first (a
    stranger with no face raises no alarm, so it counts in `strangers` but has no score); `none` if
    no stranger has a score."""
    return scores[max(0, int(np.floor(0.01 * strangers)) - 1)] if len(scores) else none


def time_end_to_end(rec, gallery_v, gallery_names, paths: list[Path], n: int = 30) -> float:
    """Milliseconds per face: detection, keypoints, alignment, embedding and search, uncached."""
    index, paths = ExactIndex(gallery_v, gallery_names), paths[:n]
    rec.faces(paths[0])  # warm-up: traces the nets
    started, faces = time.perf_counter(), 0
    for path in paths:
        _, found, vectors = rec.faces(path)
        index.search(vectors, k=1)
        faces += len(found)
    return 1000 * (time.perf_counter() - started) / max(faces, 1)


def run_identify(rec, lfw, sets: tuple[list, list, list] | None = None) -> dict:
    """The colleagues benchmark for one recogniser (on its photos, or on the (enrol, probes, strangers) given)."""
    enrol, probes, strangers = sets or colleagues(lfw)
    g_v, g_ok = embed_photos(rec, [p for _, p in enrol])
    g_names = np.array([n for n, _ in enrol], dtype=object)[g_ok]
    p_v, p_ok = embed_photos(rec, [p for _, p in probes])
    s_v, s_ok = embed_photos(rec, [p for _, p in strangers])
    p_names = np.array([n for n, _ in probes], object)
    # the pair threshold: identify's rule before it had an open-set cut
    row = identify_scores(g_v[g_ok], g_names, p_v, p_names, p_ok, s_v, s_ok,
                          rec.embedder.metadata.get("identify_threshold"), rec.embedder.metadata.get("threshold"))
    row.update(head_scores(g_v[g_ok], g_names, p_v, p_names, p_ok, s_v, s_ok))
    row["ms_per_face"] = time_end_to_end(rec, g_v[g_ok], g_names, [p for _, p in probes])
    return row


def head_scores(gallery_v, gallery_names, probe_v, probe_names, probe_ok, stranger_v, stranger_ok) -> dict:
    """The same protocol with a softmax head fitted on the enrolled embeddings (`keyface train-head`):
    rank-1 by the most probable person; open set by a probability threshold passing 1% of strangers."""
    from keyface.recognition.core.head import fit_head
    model, people = fit_head(gallery_v, gallery_names)
    probs = np.asarray(model(probe_v.astype(np.float32), training=False))
    right = (people[probs.argmax(1)] == probe_names.astype(str)) & probe_ok
    strangers = np.full(len(stranger_ok), -np.inf)
    strangers[stranger_ok] = np.asarray(model(stranger_v[stranger_ok].astype(np.float32), training=False)).max(1)
    rates = open_set_rates(right, probs.max(1), strangers)
    return {"head_rank1": rates["rank1"], "head_dir_at_far_1pct": rates["dir_at_far_1pct"]}


def run_verify(rec, lfw) -> dict:
    """View 1 verification for one recogniser."""
    scores = {}
    for split in ("DevTrain", "DevTest"):
        pairs = lfw.view1_pairs(split)
        paths = sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)})
        vectors, ok = embed_photos(rec, paths)
        index = {p: i for i, p in enumerate(paths)}
        a = np.array([index[p.path_a] for p in pairs])
        b = np.array([index[p.path_b] for p in pairs])
        dist = np.where(ok[a] & ok[b], pair_distances(vectors[a], vectors[b]), np.inf)
        scores[split] = (dist, np.array([p.same for p in pairs]))
    # a missing face is infinitely far: "different"; 4.0 stands in for it (cosine distances are <= 2)
    train_dist, train_same = scores["DevTrain"]
    threshold = best_threshold(train_dist.clip(max=4.0), train_same)
    dist, same = scores["DevTest"][0].clip(max=4.0), scores["DevTest"][1]
    return {"accuracy": accuracy_at(dist, same, threshold), "threshold": threshold,
            "auc": distance_auc(dist, same), "tar_at_far_1e-3": tar_at_far(dist, same, 1e-3),
            # the training pairs at their own best threshold: for choosing settings without the test pairs
            "devtrain_accuracy": accuracy_at(train_dist.clip(max=4.0), train_same, threshold),
            "devtrain_auc": distance_auc(train_dist.clip(max=4.0), train_same),
            "pairs": int(len(same)), "pairs_no_face": int(np.isinf(scores["DevTest"][0]).sum())}


CLUSTER_PROTOCOL = ("LFW DevTest people with >= 2 photos: the central face of every photo, clustered with no "
                    "number of people given (average linkage, cut where pairwise F is best on held-out DevTrain "
                    "people: the model's calibrated cluster_threshold); scored by pairwise precision / recall / F-measure and NMI "
                    "against the true people. No DevTest person was seen in training.")


def devtest_cluster_items(lfw) -> list[tuple[str, Path]]:
    """(person, photo) of every LFW DevTest person with 2 or more photos: the clustering protocol."""
    return [(person, p) for person, n in lfw.image_count("DevTest").items() if n >= 2 for p in lfw.images_of(person)]


def run_cluster(rec, lfw) -> dict:
    """`bench cluster` for one embedder: DevTest people with 2+ photos, clustered and scored."""
    items = devtest_cluster_items(lfw)
    vectors, ok = embed_photos(rec, [p for _, p in items])
    truth = np.array([person for person, _ in items], object)[ok]
    started = time.perf_counter()
    threshold = cluster_threshold(rec.embedder, None)
    labels = cluster_faces(vectors[ok], threshold)
    return {**pairwise_scores(truth, labels), "photos_no_face": int((~ok).sum()), "threshold": threshold,
            "cluster_seconds": time.perf_counter() - started}
