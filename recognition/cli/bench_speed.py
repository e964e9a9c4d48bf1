"""`keyface bench speed` and `keyface bench search`: what a photo costs, stage by stage on one core with
face_recognition beside, enrolment and identify throughput on every core; and exact search over N stored
embeddings."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER
from keyface.recognition.cli.commands import MAX_DEFAULT_WORKERS, count, count_or_zero, number_type
from keyface.recognition.cli.tables import print_table, set_threads, write_report
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, DETECTORS, l2_normalise
from keyface.runtime.networks import PRECISIONS

log = logging.getLogger(__name__)

SIZE = number_type(int, 5, 10**9, what="stored embeddings, 5 or more (five photos a person)")
DIM = number_type(int, 2, 65_536, what="an embedding dimension from 2 to 65536")


def register(kinds, common) -> None:
    """Add `bench speed` and `bench search`: what things cost."""
    p = kinds.add_parser("speed", help="ms per face end to end and per stage on one core, for each detector, "
                         "face_recognition beside; enrolment photos/s on every core")
    p.add_argument("--photos", type=count, default=100, dest="photo_count",
                   help="one-face LFW photos to time (default: 100)")
    p.add_argument("--enrol", type=count_or_zero, default=1000, help="LFW photos to enrol for the throughput figure "
                   "(default: 1000; 0 skips it)")
    p.add_argument("--identify", type=count_or_zero, default=0, metavar="N", help="also identify N LFW photos one at a "
                   "time and several at once, for the throughput of `keyface identify` on many photos")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER, help=f"embedder (default: {DEFAULT_EMBEDDER})")
    p.add_argument("--detector", action="append", choices=sorted(DETECTORS),
                   help=f"detector to time (repeatable; default: {DEFAULT_DETECTOR} and mtcnn)")
    p.add_argument("--no-peers", action="store_true", help="leave out face_recognition even if installed")
    p.add_argument("--mirror", choices=["on", "off"], help="also time the embedder with its mirror-image "
                   "averaging switched this way (default: only as the model file says)")
    p.add_argument("--precision", choices=PRECISIONS, help="also time the embedding network in this precision "
                   "(default: only in the embedder's own)")
    common(p)
    p.set_defaults(func=cmd_bench_speed)
    p = kinds.add_parser("search", help="exact search speed over a gallery of N stored embeddings")
    p.add_argument("--size", type=SIZE, default=1_000_000, help="stored embeddings (default: 1,000,000)")
    p.add_argument("--dim", type=DIM, default=256, help="embedding dimension (default: 256)")
    common(p)
    p.set_defaults(func=cmd_bench_search)


SPEED_COLUMNS = [("pipeline", "pipeline", "s"), ("decode", "decode", ".1f"), ("detection", "detect", ".1f"),
                 ("keypoints", "keypoints", ".1f"), ("alignment", "align", ".1f"), ("embedding", "embed", ".1f"),
                 ("search", "search", ".2f"), ("end_to_end", "ms/photo e2e", ".1f"), ("photos", "photos", "d"),
                 ("faces", "faces found", "d")]


def _pipeline_name(embedder: str, rec, detector: str) -> str:
    """How a speed row names a pipeline: embedder, precision, mirror and detector."""
    mirror = "mirror on" if getattr(rec.embedder, "mirror", False) else "no mirror"
    return f"keyface {embedder} ({rec.embedder.precision}, {mirror}) + {detector}"


def cmd_bench_speed(args) -> int:
    """Per-stage milliseconds per face on one core for each detector (and the peer); enrolment rate."""
    set_threads(1)
    import cv2
    from keyface.recognition.facade import build
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.evaluation import speed
    cv2.setNumThreads(1)
    lfw = LFW(data_root(args.data))
    paths, rows = speed.speed_photos(lfw, args.photo_count), []
    for n, detector in enumerate(args.detector or [DEFAULT_DETECTOR, "mtcnn"]):
        rec = build(args.embedder, args.models, detector=detector)
        rows.append({"pipeline": _pipeline_name(args.embedder, rec, detector), **speed.stage_ms(rec, paths)})
        if n == 0 and args.precision and args.precision != rec.embedder.precision:  # the first pipeline, other precision
            other = build(args.embedder, args.models, detector=detector, precision=args.precision)
            rows.append({"pipeline": _pipeline_name(args.embedder, other, detector), **speed.stage_ms(other, paths)})
        if n == 0 and args.mirror and getattr(rec.embedder, "mirror", None) not in (None, args.mirror == "on"):
            rec.embedder.mirror = args.mirror == "on"  # the first detector's pipeline, the other way
            rows.append({"pipeline": _pipeline_name(args.embedder, rec, detector), **speed.stage_ms(rec, paths)})
    if not args.no_peers:
        from keyface.recognition.evaluation.contenders import face_recognition_contender
        peer = face_recognition_contender()
        if peer is not None:
            rows.append({"pipeline": "face_recognition (dlib HOG + ResNet)", **peer.stage_ms(paths)})
    enrol = None
    if args.enrol:
        from keyface.runtime import networks as runtime
        runtime.set_threads(0)  # enrolment is timed on every core, as `keyface enroll` runs
        enrol = _enrol_rate(build(args.embedder, args.models), lfw, args.enrol)
    at_once = min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)  # as `keyface identify` runs several photos
    rates = (speed.identify_rates(lambda: build(args.embedder, args.models), lfw, args.identify, at_once)
             if args.identify else [])
    print(speed.SPEED_PROTOCOL + "; one core (1 TensorFlow, LiteRT and OpenCV thread)\n")
    print_table(rows, SPEED_COLUMNS)
    if enrol:
        print(f"\nenrol: {enrol['enrolled']} of {enrol['photos']} LFW photos in {enrol['seconds']:.1f} s = "
              f"{enrol['photos_per_s']:.1f} photos/s with {enrol['workers']} workers (one per core)")
    if rates:
        print("\n" + speed.IDENTIFY_RATE_PROTOCOL)
    for rate in rates:
        print(f"identify: {rate['photos']} LFW photos, {rate['workers']} at once, networks on "
              f"{rate['threads_per_network']} core(s) each: {rate['photos_per_s']:.1f} photos/s "
              f"({1000 / rate['photos_per_s']:.1f} ms a photo)")
    write_report(Path(args.out), "speed", {"protocol": speed.SPEED_PROTOCOL, "threads": 1, "rows": rows,
                                           "enrol": enrol, "identify_protocol": speed.IDENTIFY_RATE_PROTOCOL,
                                           "identify": rates})
    return 0


def _enrol_rate(rec, lfw, n: int) -> dict:
    """Enrol n LFW DevTest photos (whole people, most photos first) into a scratch gallery."""
    import tempfile
    from keyface.recognition.evaluation import speed
    from keyface.recognition.facade import Gallery
    people, total = {}, 0
    for person, _ in sorted(lfw.image_count("DevTest").items(), key=lambda kv: -kv[1]):
        if total >= n:
            break
        people[person] = lfw.images_of(person)[: n - total]
        total += len(people[person])
    rec = rec.taking("largest")  # as `enroll --largest-face`: LFW photos often show a second person
    with tempfile.TemporaryDirectory() as scratch, Gallery(Path(scratch) / "speed.db", rec) as gallery:
        return speed.enrol_rate(gallery, people, os.cpu_count() or 1)


def cmd_bench_search(args) -> int:
    """Search speed over N stored embeddings of N/5 people (5 photos each), exact and FAISS."""
    import time
    import numpy as np
    from keyface.recognition.core.approximate import FaissIndex
    from keyface.recognition.core.search import ExactIndex
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    n_people = -(-args.size // 5)  # the last person has fewer photos when the size is not a multiple of 5
    centres = rng.normal(size=(n_people, args.dim)).astype(np.float32)
    people = np.repeat(np.arange(n_people), 5)[:args.size]
    gallery = l2_normalise(centres[people] + rng.normal(0, 0.6, (args.size, args.dim)).astype(np.float32))
    names = np.array([f"p{i:07d}" for i in people], dtype=object)
    truth = rng.integers(0, n_people, 50)
    probes = l2_normalise(centres[truth] + rng.normal(0, 0.6, (50, args.dim)).astype(np.float32))
    rows, exact_top1 = [], None
    for name, build in (("exact (NumPy)", ExactIndex), ("FAISS IVF", FaissIndex)):
        started = time.perf_counter()
        try:
            index = build(gallery, names)
        except ImportError as exc:
            log.info("%s", exc)
            continue
        built = time.perf_counter() - started
        index.search(probes[:1])  # warm-up
        started = time.perf_counter()
        top1 = [index.search(p[None], k=1)[0][0].person for p in probes]
        ms = 1000 * (time.perf_counter() - started) / len(probes)
        exact_top1 = exact_top1 or top1
        rows.append({"index": name, "embeddings": args.size, "dim": args.dim, "build_s": built, "ms_per_probe": ms,
                     "same_top1_as_exact": float(np.mean([a == b for a, b in zip(top1, exact_top1)]))})
    print_table(rows, [("index", "index", "s"), ("embeddings", "embeddings", ",d"), ("dim", "dim", "d"),
                       ("build_s", "build s", ".1f"), ("ms_per_probe", "ms/probe", ".1f"),
                       ("same_top1_as_exact", "same top-1", ".3f")])
    write_report(Path(args.out), "search", {"protocol": f"{args.size:,} unit embeddings of {n_people:,} people "
                                            "(5 noisy photos around each person's centre); 50 probes, one at a time",
                                            "threads": args.threads, "rows": rows})
    return 0
