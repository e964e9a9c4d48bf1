"""Speed: milliseconds per face for each stage of the pipeline, and enrolment throughput."""
from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from keyface.data.images import load_image

SPEED_PROTOCOL = ("LFW DevTest people with a single photo (one face each, 250x250), in file order; each stage "
                  "timed separately after a warm-up photo, detection uncached; search in a gallery of 235 "
                  "stored faces (the colleagues protocol's size)")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_photos(lfw, n: int) -> list[Path]:
    """The first n single-photo DevTest people's photos: the speed benchmark's photos."""
    people = [p for p, count in lfw.image_count("DevTest").items() if count == 1]
    return [lfw.images_of(p)[0] for p in people[:n]]


def stage_ms(rec, paths: list[Path], gallery_size: int = 235) -> dict:
    """Milliseconds per photo for each stage, uncached: decoding, detection, keypoints, alignment,
    embedding, and search in a gallery the size of the colleagues protocol's (47 people x 5 photos).
    The photos hold one face each, so per photo is per face; `faces` says how many were found."""
    from keyface.recognition.core.embedders import l2_normalise
    from keyface.recognition.core.pipeline import align_batch
    from keyface.recognition.core.search import ExactIndex
    stored = l2_normalise(np.random.default_rng(0).normal(size=(gallery_size, rec.embedder.dim)))
    index = ExactIndex(stored, np.array([f"p{i // 5}" for i in range(gallery_size)], object))
    rec.faces(paths[0])  # warm-up: traces the networks
    stages = ("decode", "detection", "keypoints", "alignment", "embedding", "search")
    totals, faces = dict.fromkeys(stages, 0.0), 0
    for path in paths:
        t0 = time.perf_counter()
        rgb = load_image(path)
        t1 = time.perf_counter()
        found = rec.pipeline.detector.detect(rgb)
        t2 = time.perf_counter()
        keypointed = rec.pipeline.faces_at(rgb, found)
        t3 = time.perf_counter()
        batch = align_batch(rgb, keypointed, rec.embedder.spec)
        t4 = time.perf_counter()
        vectors = rec.embedder.embed(batch)
        t5 = time.perf_counter()
        index.search(vectors, k=1)
        t6 = time.perf_counter()
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            totals[key] += dt
        faces += len(found)
    per_photo = {k: 1000 * v / len(paths) for k, v in totals.items()}
    return {**per_photo, "end_to_end": sum(per_photo.values()), "photos": len(paths), "faces": faces}


def enrol_rate(gallery, people: dict[str, list[Path]], workers: int) -> dict:
    """Photos per second enrolling every person's photos into a gallery (as `keyface enroll --folders`)."""
    started = time.perf_counter()
    enrolled = sum(gallery.enrol(person, photos, workers=workers)[0] for person, photos in people.items())
    seconds = time.perf_counter() - started
    photos = sum(len(p) for p in people.values())
    return {"photos": photos, "enrolled": enrolled, "seconds": seconds, "photos_per_s": photos / seconds,
            "workers": workers}
