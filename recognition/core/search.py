"""Nearest-person search over a gallery's embeddings: exact, in NumPy."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from keyface.data.errors import MissingDependency

CANDIDATES = 256  # RowIndex: nearest rows searched for the k nearest distinct people before all rows are


class Match(NamedTuple):
    """A candidate identity for a probe: the person and their nearest stored embedding's distance."""
    person: str
    distance: float


def cosine_distances(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between L2-normalised rows: (N, D) x (M, D) -> (N, M), in [0, 2]."""
    return 1.0 - np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T


class ExactIndex:
    """Every stored vector grouped by person once, so a query is one matrix product and a block-wise min."""

    def __init__(self, vectors: np.ndarray, names: np.ndarray):
        names = np.asarray(names, dtype=object)
        order = np.argsort(names.astype(str), kind="stable")
        self.vectors = np.ascontiguousarray(np.asarray(vectors, np.float32)[order])
        names = names[order]
        self.starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if len(names) else np.zeros(0, int)
        self.people = names[self.starts]

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, the k nearest distinct people (by their closest photo), nearest first."""
        probes = np.atleast_2d(np.asarray(probes, np.float32))
        if len(self.vectors) == 0:
            return [[] for _ in range(len(probes))]  # an empty gallery: nobody is near
        per_person = np.minimum.reduceat(cosine_distances(probes, self.vectors), self.starts, axis=1)
        k = min(k, len(self.people))
        top = np.argpartition(per_person, k - 1, axis=1)[:, :k]
        out = []
        for row, cand in zip(per_person, top):
            cand = cand[np.argsort(row[cand])]
            out.append([Match(str(self.people[j]), float(row[j])) for j in cand])
        return out


class RowIndex:
    """Exact search over rows kept in gallery order (not grouped by person): the nearest CANDIDATES rows
    give the k nearest distinct people whenever k of them are among those rows (else every row is used)."""

    def __init__(self, vectors: np.ndarray, ids: np.ndarray, names: dict[int, str]):
        self.vectors, self.ids, self.names = vectors, ids, names

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, the k nearest distinct people (by their closest row), nearest first; none when
        the gallery is empty."""
        distances = cosine_distances(np.atleast_2d(np.asarray(probes, np.float32)), self.vectors)
        return [self._people(row, k) if len(row) else [] for row in distances]

    def _people(self, row: np.ndarray, k: int) -> list[Match]:
        """The k nearest distinct people of one probe's distances to every row."""
        for size in (min(CANDIDATES, len(row)), len(row)):
            near = np.argpartition(row, size - 1)[:size] if size < len(row) else np.arange(len(row))
            near = near[np.argsort(row[near], kind="stable")]
            found: dict[int, float] = {}
            for i in near:
                found.setdefault(int(self.ids[i]), float(row[i]))
                if len(found) == k:
                    break
            if len(found) == k or size == len(row):
                return [Match(self.names[p], d) for p, d in found.items()]
        return []


def nearest_people(probes: np.ndarray, gallery: np.ndarray, names: np.ndarray, k: int = 3) -> list[list[Match]]:
    """One-off search: build an ExactIndex over (gallery, names) and query it."""
    return ExactIndex(gallery, names).search(probes, k)


class FaissIndex:
    """Approximate search for large galleries: FAISS IVF over inner products, re-ranked exactly per person.

    The nearest `candidates` vectors come from the IVF lists nearest the probe; their people are
    then ranked by their closest vector, exactly as ExactIndex does over everything.
    """

    def __init__(self, vectors: np.ndarray, names: np.ndarray, nprobe: int = 16, candidates: int = 64):
        try:
            import faiss
        except ImportError:
            raise MissingDependency("the faiss index needs faiss-cpu: pip install 'keyface[ann]'") from None
        self.vectors = np.ascontiguousarray(np.asarray(vectors, np.float32))
        self.names = np.asarray(names, dtype=object)
        n_lists = int(max(1, min(4096, np.sqrt(len(self.vectors)) * 2)))
        quantiser = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index = faiss.IndexIVFFlat(quantiser, self.vectors.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
        sample = self.vectors[np.random.default_rng(0).permutation(len(self.vectors))[:n_lists * 40]]
        self.index.train(sample)
        self.index.add(self.vectors)
        self.index.nprobe, self.candidates = nprobe, candidates

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, up to k nearest distinct people among the approximate candidates."""
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, np.float32)))
        sims, ids = self.index.search(probes, min(self.candidates, len(self.vectors)))
        out = []
        for row_sims, row_ids in zip(sims, ids):
            best: dict[str, float] = {}
            for sim, i in zip(row_sims, row_ids):
                if i >= 0:
                    best.setdefault(str(self.names[i]), 1.0 - float(sim))  # first seen = nearest
            out.append([Match(p, d) for p, d in sorted(best.items(), key=lambda item: item[1])[:k]])
        return out
