"""Approximate nearest-person search for very large galleries (FAISS, `pip install 'keyface[ann]'`): over a
matrix of embeddings, or over a gallery file's vector file, and `LiveIndex`, what a server searches with."""
from __future__ import annotations

import logging
import math
import os
import threading

import numpy as np

from keyface.data.errors import MissingDependency
from keyface.recognition.core.search import Match, RowIndex, first_per_person
from keyface.runtime.networks import without_native_notes

log = logging.getLogger(__name__)

# A server searches a gallery of this many stored faces or more approximately (FaissRows), where faiss-cpu is
# installed: exact search over 1e6 rows takes ~50 ms a face, FAISS ~1 ms.
APPROXIMATE_ROWS = 200_000


class FaissIndex:
    """Approximate search for large galleries: FAISS IVF over inner products, re-ranked exactly per person.

    The nearest `candidates` vectors come from the IVF lists nearest the probe; their people are
    then ranked by their closest vector, exactly as ExactIndex does over everything.
    """
    kind = "approximate"

    def __init__(self, vectors: np.ndarray, names: np.ndarray, nprobe: int = 16, candidates: int = 64):
        faiss = _faiss()
        self.vectors = np.ascontiguousarray(np.asarray(vectors, np.float32))
        self.names = np.asarray(names, dtype=object)
        n_lists = int(max(1, min(4096, np.sqrt(len(self.vectors)) * 2)))
        quantiser = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index = faiss.IndexIVFFlat(quantiser, self.vectors.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
        sample = self.vectors[np.random.default_rng(0).permutation(len(self.vectors))[:n_lists * 40]]
        without_native_notes(lambda: self.index.train(sample))  # FAISS's note on a small sample is not the user's
        self.index.add(self.vectors)
        self.index.nprobe, self.candidates = nprobe, candidates

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, up to k nearest distinct people among the approximate candidates."""
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, np.float32)))
        sims, ids = self.index.search(probes, min(self.candidates, len(self.vectors)))
        return [[Match(p, d) for p, d in first_per_person(  # FAISS gives the candidates nearest first
            ((str(self.names[i]), 1.0 - sim) for sim, i in zip(row_sims, row_ids) if i >= 0), k).items()]
            for row_sims, row_ids in zip(sims, ids)]


class FaissRows:
    """Approximate search over a large gallery's vector file (a RowIndex with a lineage): FAISS IVF over 8-bit
    scalar-quantised rows (~128 MB a million faces, not a second copy of the vectors) gives the nearest
    `candidates` rows, which are re-ranked exactly from the file and ranked by person. Rows appended to the
    file since it was built are added by extend(). Searches and additions may come from different threads."""
    kind = "approximate"

    def __init__(self, rows: RowIndex, nprobe: int = 16, candidates: int = 64):
        faiss = _faiss()
        dim = rows.vectors.shape[1]
        lists = int(min(4096, max(1, 4 * math.sqrt(len(rows)))))
        self.index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_8bit,
                                                   faiss.METRIC_INNER_PRODUCT)
        sample = _sample_rows(rows, lists * 40)  # FAISS wants ~39 training rows a list
        without_native_notes(lambda: self.index.train(sample))
        self.index.nprobe, self.candidates = nprobe, candidates
        self.lineage, self.rows, self.count, self._lock = rows.lineage, rows, 0, threading.Lock()
        self.extend(rows)

    def __len__(self) -> int:
        return self.count

    def extend(self, rows: RowIndex, chunk: int = 100_000) -> None:
        """Add the rows appended since (the same lineage), and take the newer RowIndex's names (renames)."""
        for start in range(self.count, len(rows), chunk):
            block = _read_rows(rows, start, min(start + chunk, len(rows)))
            with self._lock:
                self.index.add(block)
        self.rows, self.count = rows, max(self.count, len(rows))

    def search(self, probes: np.ndarray, k: int = 3) -> list[list[Match]]:
        """For each probe, up to k nearest distinct people among the candidates, by exact distance."""
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, np.float32)))
        with self._lock:
            _, found = self.index.search(probes, min(self.candidates, self.count))
        rows = self.rows
        out = []
        for probe, ids in zip(probes, found):
            ids = np.sort(ids[ids >= 0])
            distances = 1.0 - np.asarray(rows.vectors[ids], np.float32) @ probe  # a few pages of the file
            best = first_per_person(((int(rows.ids[ids[i]]), distances[i])
                                     for i in np.argsort(distances, kind="stable")), k)
            out.append([Match(rows.names[p], d) for p, d in best.items()])
        return out


def _faiss():
    """FAISS, imported on first use; MissingDependency (with the pip line) where it is not installed."""
    try:
        import faiss
    except ImportError:
        raise MissingDependency("approximate search needs faiss-cpu: pip install 'keyface[ann]'") from None
    return faiss


def _read_rows(rows: RowIndex, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) read from the vector file (not through the mapping, whose pages would stay resident);
    refused if the file was replaced since the rows were mapped."""
    path, inode, offset = rows.lineage
    dim = rows.vectors.shape[1]
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_ino != inode:
            raise RuntimeError(f"{path} was rebuilt while it was read")
        fh.seek(offset + start * dim * 4)
        block = np.fromfile(fh, np.float32, count=(stop - start) * dim)
    return np.ascontiguousarray(block.reshape(stop - start, dim))


def _sample_rows(rows: RowIndex, count: int, blocks: int = 64) -> np.ndarray:
    """About `count` rows for training, read as `blocks` runs spread evenly over the file."""
    if len(rows) <= count:
        return _read_rows(rows, 0, len(rows))
    size = max(1, count // blocks)
    starts = np.linspace(0, len(rows) - size, blocks).astype(int)
    return np.concatenate([_read_rows(rows, int(s), int(s) + size) for s in starts])


class LiveIndex:
    """What a server searches a gallery with: its own (exact) index; or, for a gallery of `min_rows` stored faces
    or more (with faiss-cpu installed), a FaissRows built in the background from its vector file and extended
    with each enrolment. The exact index answers until that is ready, and while it is rebuilt after a change
    that was not an enrolment (a removal rewrites the vector file)."""

    def __init__(self, min_rows: int | None = APPROXIMATE_ROWS):
        self.min_rows, self._ready, self._building, self._last = min_rows, None, None, None

    @property
    def state(self) -> str:
        """How the last search went: "exact", "approximate" (FAISS), "building" (exact while FAISS is built), the
        name of another index's kind (a database's own search: "hnsw"), or "none yet" before the first."""
        if self._building:
            return "building"
        return "none yet" if self._last is None else getattr(self._last, "kind", "exact")

    def pick(self, exact):
        """The index to search now, given the gallery's current exact one."""
        self._last = chosen = self._choose(exact)
        return chosen

    def _choose(self, exact):
        if self.min_rows is None or not isinstance(exact, RowIndex) or exact.lineage is None \
                or len(exact) < self.min_rows:
            return exact
        ready = self._ready
        if ready is not None and ready.lineage == exact.lineage and len(ready) <= len(exact):
            ready.extend(exact)
            return ready
        if self._building != exact.lineage:
            self._building = exact.lineage
            threading.Thread(target=self._build, args=(exact,), daemon=True, name="faiss-build").start()
        return exact

    def _build(self, exact: RowIndex) -> None:
        try:
            built = FaissRows(exact)
        except MissingDependency as exc:  # stays exact, as without this index; said once
            log.info("%s; searching exactly", exc)
            self.min_rows = None
        except Exception:  # a failed build leaves exact search in place; the next change tries again
            log.exception("the approximate index could not be built; searching exactly")
        else:
            self._ready = self._last = built  # what the next search of this gallery will use
            log.info("approximate index ready over %d faces", len(built))
        finally:
            self._building = None
