"""Nearest-person search over a gallery's embeddings: exact, in NumPy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    """A candidate identity for a probe: the person and their nearest stored embedding's distance."""
    person: str
    distance: float


def cosine_distances(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between L2-normalised rows: (N, D) x (M, D) -> (N, M), in [0, 2]."""
    return 1.0 - np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T


def nearest_people(probes: np.ndarray, gallery: np.ndarray, names: np.ndarray, k: int = 3) -> list[list[Match]]:
    """For each probe, the k nearest distinct people (by their closest photo), nearest first."""
    if len(gallery) == 0:
        return [[] for _ in range(len(probes))]
    order = np.argsort(names, kind="stable")  # a no-op when rows come grouped by person (the gallery's order)
    if not (order == np.arange(len(order))).all():
        gallery, names = gallery[order], names[order]
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    people = names[starts]
    # best distance per person: a min over each person's contiguous block of rows
    per_person = np.minimum.reduceat(cosine_distances(probes, gallery), starts, axis=1)
    k = min(k, len(people))
    top = np.argpartition(per_person, k - 1, axis=1)[:, :k]
    out = []
    for row, cand in zip(per_person, top):
        cand = cand[np.argsort(row[cand])]
        out.append([Match(str(people[j]), float(row[j])) for j in cand])
    return out
