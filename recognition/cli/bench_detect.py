"""`keyface bench detect`: every detector on the benchmark photos, group canvases, video frames and real
multi-face photos, in one run, face_recognition's HOG beside where installed."""
from __future__ import annotations

from pathlib import Path

from keyface.detection.detector import MIN_FACE
from keyface.recognition.cli.tables import print_table, write_report
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, make_detector

SETS = ("lfw", "youtube", "group", "video", "real")
BENCHMARK_COLUMNS = [("detector", "detector", "s"), ("lfw_found", "LFW found", ",d"), ("lfw_photos", "of", ",d"),
                     ("lfw_rate", "LFW rate", ".4f"), ("youtube_found", "youtube found", ",d"),
                     ("youtube_frames", "of", ",d"), ("youtube_rate", "youtube rate", ".4f")]
BIN_COLUMNS = [(f"recall_{lo}_{hi}", f"<{hi}px" if lo == 0 else f"{lo}-{hi}px" if hi < 10_000 else f">={lo}px", ".3f")
               for lo, hi in ((0, 20), (20, 24), (24, 32), (32, 48), (48, 64), (64, 96), (96, 150), (150, 10_000))]
CANVAS_COLUMNS = [("set", "set", "s"), ("detector", "detector", "s"), ("photos", "photos", "d"), ("faces", "faces", "d"),
                  ("recall", "recall", ".3f"), *BIN_COLUMNS, ("false_per_photo", "false/photo", ".2f")]
REAL_COLUMNS = [("detector", "detector", "s"), ("photos", "photos", "d"), ("faces", "faces", "d"),
                ("recall", "recall", ".3f"), *BIN_COLUMNS, ("unconfirmed_per_photo", "unconfirmed/photo", ".2f")]


def run_detect_bench(args) -> int:
    """Score each detector on the sets asked for; print the tables, write detect.json (and the canvases'
    timings by photo size)."""
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.evaluation import crowd
    from keyface.recognition.evaluation.detection import DETECTION_PROTOCOL, detection_rates
    sets = _sets(args.sets)
    root = data_root(args.data)
    lfw = LFW(root)
    detectors = [make_detector(d, m) for d in args.detector or [DEFAULT_DETECTOR, "mtcnn"]
                 for m in args.min_face or [MIN_FACE]]
    hog = None if args.no_peers else crowd.hog_peer()
    report = {"sets": sets, "seed": args.seed, "threads": args.threads}
    if {"lfw", "youtube"} & set(sets):
        report["benchmark_photos"] = [detection_rates(lfw, root, d) for d in detectors]
        print(DETECTION_PROTOCOL + "\n")
        print_table(report["benchmark_photos"], BENCHMARK_COLUMNS)
    canvas_rows = []
    if {"group", "video"} & set(sets):
        sources = crowd.canvas_sources(lfw)
        peers = detectors + ([hog] if hog else [])
        for kind, n in (("group", args.canvases), ("video", args.frames)):
            if kind in sets:
                canvas_rows += crowd.score_canvases(kind, n, sources, peers, args.seed)
        print("\n" + crowd.CANVAS_PROTOCOL + "\n")
        print_table(canvas_rows, CANVAS_COLUMNS)
        _print_times(canvas_rows)
    report["canvases"] = canvas_rows
    if "real" in sets:
        report["real_multi_face"] = crowd.score_real_photos(lfw, detectors, hog)
        print("\n" + crowd.REAL_PROTOCOL + "\n")
        print_table(report["real_multi_face"], REAL_COLUMNS)
    report["protocols"] = {"benchmark_photos": DETECTION_PROTOCOL, "canvases": crowd.CANVAS_PROTOCOL,
                           "real_multi_face": crowd.REAL_PROTOCOL}
    report["hog_peer"] = "face_recognition HOG, upsampled once" if hog else "not installed or left out"
    write_report(Path(args.out), "detect", report)
    return 0


def _sets(text: str) -> list[str]:
    """The comma-separated set names, checked."""
    from keyface.data.errors import KeyfaceError
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETS]
    if unknown or not names:
        raise KeyfaceError(f"unknown set(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(SETS)}")
    return names


def _print_times(rows: list[dict]) -> None:
    """Median ms per photo by photo size (megapixels), a line per set and detector."""
    print("\nms per photo (median) by megapixels:")
    for row in rows:
        times = ", ".join(f"{mp} MP {ms:,.0f}" for mp, ms in row["ms_by_megapixels"].items())
        print(f"  {row['set']:<6} {row['detector']:<34} {times}")
