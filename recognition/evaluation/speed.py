"""Speed: milliseconds per face for each stage of the pipeline, and enrolment and identification throughput."""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.images import load_image

SPEED_PROTOCOL = ("LFW DevTest people with a single photo (250x250, one person each, a few with someone beside: "
                  "every face found is keypointed and embedded), in file order; each stage "
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
    The photos show one person each (a few someone beside too); `faces` says how many faces were found."""
    from keyface.keypoints.predictor import align_batch
    from keyface.recognition.core.pipeline import l2_normalise
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


IDENTIFY_RATE_PROTOCOL = ("identify throughput: LFW DevTest photos (the colleagues protocol's probes, then its "
                          "strangers), the first N, against a gallery of the colleagues' first 5 photos each, as "
                          "`keyface identify` runs many photos: one at a time with each network on every core, and "
                          "several at once with the cores shared out between them (`--workers`)")


def identify_rates(make_recogniser: Callable, lfw, n: int, workers: int) -> list[dict]:
    """Photos per second identifying n LFW photos one at a time (networks on every core) and `workers` at once
    (the cores shared out between them); `make_recogniser()` builds the pipeline anew for each thread setting."""
    from keyface.recognition.evaluation.protocols import colleagues
    from keyface.recognition.facade import Gallery
    from keyface.runtime.networks import set_threads
    enrol, probes, strangers = colleagues(lfw)
    photos, people = [path for _, path in probes + strangers][:n], {}
    for person, path in enrol:
        people.setdefault(person, []).append(path)
    cores, rows = os.cpu_count() or 1, []
    with tempfile.TemporaryDirectory() as scratch:
        for threads, at_once in ((0, 1), (max(1, cores // workers), workers)):
            set_threads(threads)  # networks are made with the thread count of the moment
            with Gallery(Path(scratch) / "rate.db", make_recogniser()) as gallery:
                for person, paths in people.items() if gallery.is_empty() else ():
                    gallery.enrol(person, paths, largest_face=True, workers=cores)
                gallery.identify(photos[0])  # warm-up: every network made
                started = time.perf_counter()
                faces = sum(len(found) for _, found in gallery.identify_all(photos, workers=at_once)
                            if isinstance(found, list))
                seconds = time.perf_counter() - started
            rows.append({"workers": at_once, "threads_per_network": threads or cores, "photos": len(photos),
                         "faces": faces, "seconds": seconds, "photos_per_s": len(photos) / seconds})
    return rows
