"""Requests that arrive together share one forward pass of the embedding network: a request that finds the
network free runs at once, and those that arrive while it is busy are run together by the next pass (none
waits for company that may never come)."""
from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np

from keyface.keypoints.predictor import FaceBatch
from keyface.recognition.core.pipeline import Embedder


class BatchingEmbedder(Embedder):
    """Wraps an embedder: concurrent embed() calls are queued and run as one batch by whichever caller
    finds the network free; each gets its own rows back."""

    def __init__(self, inner: Embedder, max_faces: int = 32):
        self.inner, self.max_faces = inner, max_faces
        self.name, self.spec, self.dim, self.version = inner.name, inner.spec, inner.dim, inner.version
        self.metadata, self.precision = inner.metadata, inner.precision
        self._queue: list[tuple[FaceBatch, Future]] = []
        self._queue_lock, self._run_lock = threading.Lock(), threading.Lock()

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        return self.inner._raw_embed(batch)

    def embed(self, batch: FaceBatch) -> np.ndarray:
        """(N, D) unit vectors, computed with whatever other requests are waiting."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        mine = Future()
        with self._queue_lock:
            self._queue.append((batch, mine))
        while not mine.done():
            with self._run_lock:  # one forward pass at a time; it takes everything queued so far
                if not mine.done():
                    self._run_queued()
        return mine.result()

    def _run_queued(self) -> None:
        """Embed every queued batch (up to max_faces faces) in one pass and hand out the rows."""
        with self._queue_lock:
            taken, faces = [], 0
            while self._queue and (not taken or faces + len(self._queue[0][0]) <= self.max_faces):
                taken.append(self._queue.pop(0))
                faces += len(taken[-1][0])
        try:
            vectors = self.inner.embed(FaceBatch(np.concatenate([b.crops for b, _ in taken]),
                                                 np.concatenate([b.keypoints for b, _ in taken])))
        except Exception as exc:  # every waiting request learns of it, none hangs
            for _, future in taken:
                future.set_exception(exc)
            return
        start = 0
        for batch, future in taken:
            future.set_result(vectors[start: start + len(batch)])
            start += len(batch)
