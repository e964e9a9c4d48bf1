"""Requests that arrive together share one forward pass, and each gets its own rows back."""
import threading
import time

import numpy as np

from keyface.keypoints.predictor import FaceBatch, InputSpec
from keyface.recognition.core.pipeline import Embedder
from keyface.recognition.server.batching import BatchingEmbedder


class SlowSum(Embedder):
    """A toy network: the vector is the crop's per-channel sums; each pass takes 30 ms and is counted."""
    name, spec, dim, version, metadata = "toy", InputSpec(size=4, channels=3), 3, "v1", {}

    def __init__(self):
        self.passes, self.sizes = 0, []

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        self.passes += 1
        self.sizes.append(len(batch))
        time.sleep(0.03)
        return batch.crops.reshape(len(batch), -1, 3).sum(1).astype(np.float32) + 1


def test_concurrent_requests_share_passes_and_get_their_own_rows():
    inner = SlowSum()
    batching = BatchingEmbedder(inner, max_faces=32)
    rng = np.random.default_rng(0)
    batches = [FaceBatch(rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8), np.zeros((n, 68, 2), np.float32))
               for n in (1, 2, 1, 3, 1, 1, 2, 1)]
    results = [None] * len(batches)

    def request(i):
        results[i] = batching.embed(batches[i])
    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for batch, got in zip(batches, results):
        np.testing.assert_allclose(got, SlowSum().embed(batch), rtol=1e-6)  # each its own rows
    assert sum(inner.sizes) == 12 and inner.passes < len(batches)  # fewer passes than requests


def test_an_error_reaches_every_waiting_request():
    class Broken(SlowSum):
        broken = True

        def _raw_embed(self, batch):
            if self.broken:
                self.passes += 1
                time.sleep(0.03)  # the others queue up meanwhile, to share the failing pass
                raise RuntimeError("network failed")
            return super()._raw_embed(batch)
    inner = Broken()
    batching = BatchingEmbedder(inner)
    batch = FaceBatch(np.ones((1, 4, 4, 3), np.uint8), np.zeros((1, 68, 2), np.float32))
    errors = [None] * 6

    def request(i):
        try:
            batching.embed(batch)
        except RuntimeError as exc:
            errors[i] = str(exc)
    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(errors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)  # none hangs
    assert errors == ["network failed"] * 6 and inner.passes < 6  # every request told, some sharing a pass
    inner.broken = False  # the queue is left clean: the next request is served
    np.testing.assert_allclose(batching.embed(batch), SlowSum().embed(batch), rtol=1e-6)
