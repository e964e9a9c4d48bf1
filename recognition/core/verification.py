"""Verification scores: pairs, distances, thresholds chosen on training data only, ROC figures."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def pair_distances(vectors_a: np.ndarray, vectors_b: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cos) between matching rows of two sets of unit vectors."""
    return 1.0 - np.sum(np.asarray(vectors_a) * np.asarray(vectors_b), axis=1)


def sample_pairs(people: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n same-person pairs and as many different-person pairs (i, j, same): balanced, so that an
    accuracy on them means what it does on LFW's pair lists."""
    rng = np.random.default_rng(seed)
    people = np.asarray(people)
    same = [(i, j) for i in range(len(people)) for j in range(i + 1, len(people)) if people[i] == people[j]]
    same = [same[k] for k in rng.permutation(len(same))[:n]]
    diff = []
    while len(diff) < len(same) and len(set(people)) > 1:
        i, j = rng.integers(0, len(people), 2)
        if people[i] != people[j]:
            diff.append((i, j))
    rows = [(i, j, 1) for i, j in same] + [(i, j, 0) for i, j in diff]
    return np.asarray(rows, np.int64).reshape(-1, 3)


def distance_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """ROC AUC of 'same person' scored by negative distance."""
    return float(roc_auc_score(np.asarray(same, int), -np.asarray(distances)))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold with the highest accuracy on these (training) pairs."""
    candidates = np.unique(distances)
    mids = np.r_[candidates[0] - 1e-6, (candidates[:-1] + candidates[1:]) / 2, candidates[-1] + 1e-6]
    acc = [np.mean((distances <= t) == same) for t in mids]
    return float(mids[int(np.argmax(acc))])


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs called correctly with 'same if distance <= threshold'."""
    return float(np.mean((distances <= threshold) == np.asarray(same, bool)))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the largest threshold whose false accept rate is <= far."""
    fpr, tpr, _ = roc_curve(np.asarray(same, int), -np.asarray(distances))
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: list[np.ndarray]) -> tuple[float, float]:
    """Mean and std of accuracy over folds, each fold's threshold chosen on the other folds only."""
    accs = []
    for k, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        t = best_threshold(distances[train], same[train])
        accs.append(accuracy_at(distances[test], same[test], t))
    return float(np.mean(accs)), float(np.std(accs))
