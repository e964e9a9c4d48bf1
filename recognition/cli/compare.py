"""`keyface compare`: every approach on the same LFW protocols, one Markdown / HTML / JSON report."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, DETECTORS
from keyface.recognition.approaches.registry import EMBEDDER_NAMES
from keyface.runtime.provenance import git_revision, keyface_version
from keyface.recognition.cli.tables import report_folder, set_threads
from keyface.recognition.cli.commands import PRECISION, count, seed
from keyface.recognition.evaluation.report import PROTOCOLS, describe, markdown_table, write_report


def register(sub) -> None:
    """Add `keyface compare`."""
    p = sub.add_parser("compare", help="every approach on the same LFW protocols, or on your own people "
                                       "(--folders): one Markdown/HTML/JSON report", parents=[PRECISION])
    p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")
    p.add_argument("--folders", metavar="DIR", help="compare on your own people instead of LFW: a folder per person "
                   "with any images in it (k-fold; no data root needed)")
    p.add_argument("--folds", type=int, default=5, help="--folders: number of folds (default: 5)")
    p.add_argument("--keep-models", action="store_true", help="--folders: keep the softmax heads trained in the run "
                   "in OUT/models, each with the people and photos it saw (default: discarded)")
    p.add_argument("--seed", type=seed, default=0, help="--folders: the seed of the fold split (default: 0)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--out", default="compare-report", help="directory for report.md, report.html, report.json")
    p.add_argument("--embedder", action="append", choices=sorted(EMBEDDER_NAMES),
                   help="keyface embedders to include (default: all)")
    p.add_argument("--no-peers", action="store_true", help="leave out face_recognition even if installed")
    p.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
    p.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                   help=f"face detector for keyface's embedders (default: {DEFAULT_DETECTOR})")
    p.add_argument("--threads", type=count, default=1, help="CPU threads for TensorFlow (timings per core by default)")
    p.set_defaults(func=cmd_compare, gallery=None)


def cmd_compare(args) -> int:
    """Score every contender (cached), then write the report."""
    if args.folders:
        return cmd_compare_folders(args)
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root, user_dir
    from keyface.recognition.evaluation.compare import cached_score, data_checksum, protocol_sets
    from keyface.recognition.evaluation.contenders import face_recognition_contender, keyface_contender
    set_threads(args.threads)
    started, out = time.perf_counter(), report_folder(Path(args.out))
    sets = protocol_sets(LFW(data_root(args.data)))
    contenders = [c for c in (keyface_contender(n, args.models, args.keypoint_model, args.detector, args.precision)
                              for n in args.embedder or EMBEDDER_NAMES) if c is not None]
    if not args.no_peers:
        contenders += [c for c in [face_recognition_contender()] if c is not None]
    checksums = {False: data_checksum(sets, False), True: data_checksum(sets, True)}
    results = {c.name: cached_score(c, sets, user_dir("cache") / "compare", checksums[c.view2]) for c in contenders}
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_revision": git_revision(),
              "keyface_version": keyface_version(),
              "command": " ".join(["keyface", *sys.argv[1:]]), "threads": args.threads, "seeds": {"all": 0},
              "data_checksums": {"view1_identify_cluster": checksums[False], "with_view2": checksums[True]},
              "protocols": PROTOCOLS, "contenders": [describe(c) for c in contenders], "results": results,
              "seconds": time.perf_counter() - started}
    write_report(out, report)
    print(markdown_table(report))
    print(f"\nreport: {out / 'report.md'}, {out / 'report.html'}, {out / 'report.json'}")
    return 0


def cmd_compare_folders(args) -> int:
    """Every approach on the user's folder-per-person tree, k-fold; the report in --out."""
    from keyface.data.folders import read_person_folders
    from keyface.recognition.evaluation import own_report
    from keyface.recognition.evaluation.folds import FOLDS_PROTOCOL, fold_record, make_folds
    from keyface.recognition.evaluation.own_people import (CLUSTER_PROTOCOL, VERIFY_PROTOCOL, folder_contenders,
                                                           score_all)
    set_threads(args.threads)
    started, root, out = time.perf_counter(), Path(args.folders), report_folder(Path(args.out))
    people = read_person_folders(root)
    folds = make_folds(people, args.folds, args.seed)
    contenders, approaches, missing = folder_contenders(args.embedder or list(EMBEDDER_NAMES), args.models,
                                                        args.keypoint_model, args.detector, args.precision,
                                                        not args.no_peers)
    keep = out / "models" if args.keep_models else None
    results, head_missing = score_all(contenders, folds, keep)
    if results and all(r["photos_no_face"] == r["photos"] for r in results.values() if "photos" in r):
        raise KeyfaceError(f"no face found in any photo under {root} by any approach: nothing to compare "
                           "(are the files readable photos of faces?)")
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_revision": git_revision(),
              "keyface_version": keyface_version(), "command": " ".join(["keyface", *sys.argv[1:]]),
              "threads": args.threads, "seed": args.seed, "tree": str(root), "people": len(people),
              "people_one_photo": sum(len(v) == 1 for v in people.values()),
              "photos": sum(len(v) for v in people.values()),
              "protocols": {"identification": FOLDS_PROTOCOL, "verification": VERIFY_PROTOCOL,
                            "clustering": CLUSTER_PROTOCOL},
              "approaches": approaches, "missing": {**missing, **head_missing}, "results": results,
              "folds": [fold_record(f, root) for f in folds], "models_kept": str(keep) if keep else None,
              "seconds": time.perf_counter() - started}
    own_report.write_report(out, report)
    print(own_report.markdown_table(report))
    print(f"\n{own_report.sample_note(report)}")
    print(f"\nreport: {out / 'report.md'}, {out / 'report.html'}, {out / 'report.json'}")
    return 0
