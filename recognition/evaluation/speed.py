"""Speed: milliseconds per face for each stage of the pipeline, and enrolment throughput."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keyface.data.images import load_image

SPEED_PROTOCOL = ("LFW DevTest people with a single photo (one face each, 250x250), in file order; each stage "
                  "timed separately after a warm-up photo, detection uncached; search in a gallery of 235 "
                  "stored faces (the colleagues protocol's size)")


def speed_photos(lfw, n: int) -> list[Path]:
    """The first n single-photo DevTest people's photos: the speed benchmark's photos."""
    people = [p for p, count in lfw.image_count("DevTest").items() if count == 1]
    return [lfw.images_of(p)[0] for p in people[:n]]


def stage_ms(rec, paths: list[Path], gallery_size: int = 235) -> dict:
    """Milliseconds per face for each stage, uncached: detection, keypoints, alignment, embedding, and
    search in a gallery the size of the colleagues protocol's (47 people x 5 photos)."""
    from keyface.recognition.core.embedders import l2_normalise
    from keyface.recognition.core.pipeline import align_batch
    from keyface.recognition.core.search import ExactIndex
    stored = l2_normalise(np.random.default_rng(0).normal(size=(gallery_size, rec.embedder.dim)))
    index = ExactIndex(stored, np.array([f"p{i // 5}" for i in range(gallery_size)], object))
    rec.faces(paths[0])  # warm-up: traces the networks
    totals, faces = dict.fromkeys(("detection", "keypoints", "alignment", "embedding", "search"), 0.0), 0
    for path in paths:
        rgb = load_image(path)
        t0 = time.perf_counter()
        found = rec.pipeline.detector.detect(rgb)
        t1 = time.perf_counter()
        faces_found = rec.pipeline.faces_at(rgb, found)
        t2 = time.perf_counter()
        batch = align_batch(rgb, faces_found, rec.embedder.spec)
        t3 = time.perf_counter()
        vectors = rec.embedder.embed(batch)
        t4 = time.perf_counter()
        index.search(vectors, k=1)
        t5 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[key] += dt
        faces += len(found)
    per_face = {k: 1000 * v / max(faces, 1) for k, v in totals.items()}
    return {**per_face, "end_to_end": sum(per_face.values()), "photos": len(paths)}


def enrol_rate(rec, gallery, people: dict[str, list[Path]], workers: int) -> dict:
    """Photos per second enrolling every person's photos into a gallery (as `keyface enroll --folders`)."""
    started = time.perf_counter()
    enrolled = sum(rec.enrol(gallery, person, photos, progress=False, workers=workers)[0]
                   for person, photos in people.items())
    seconds = time.perf_counter() - started
    photos = sum(len(p) for p in people.values())
    return {"photos": photos, "enrolled": enrolled, "seconds": seconds, "photos_per_s": photos / seconds,
            "workers": workers}
