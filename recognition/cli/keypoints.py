"""`keyface keypoints ...`: train, eval, and predict keypoints on photos."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.files import install_copy
from keyface.data.paths import data_root, models_dir
from keyface.recognition.core.pipeline import make_detector
from keyface.keypoints.predictor import LITE_PRECISION
from keyface.recognition.cli import commands
from keyface.runtime.networks import PRECISIONS

log = logging.getLogger(__name__)


def add_common(p, data: bool = False) -> None:
    """--models (and --data) flags shared by every verb (each takes --detector as a parent parser)."""
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then the per-user one)")
    if data:
        p.add_argument("--data", help="data root (default: $KEYFACE_DATA)")


def register(sub) -> None:
    """Add the `keypoints` command and its verbs to the top-level subparsers."""
    kp = sub.add_parser("keypoints", help="facial keypoints: PHOTO... | train | eval",
                        description="Find facial keypoints. `keyface keypoints PHOTO...` predicts on photos.")
    verbs = kp.add_subparsers(dest="verb", required=True, metavar="VERB")
    _register_predict(verbs)
    _register_train(verbs)
    _register_eval(verbs)


def _register_predict(verbs) -> None:
    p = verbs.add_parser("predict", help="keypoints of every face in photos (the default verb)",
                         epilog=commands.JSON_LINES_HELP, parents=[commands.SAMPLING, commands.DETECTOR])
    p.add_argument("photos", nargs="+", metavar="PHOTO",
                   help="photo files, or folders: every image in a folder, recursively, in sorted order; video files "
                   "give a record per frame looked at (15 a second by default)")
    p.add_argument("--model", help="keypoint model file or name in the models directory (default: shipped)")
    p.add_argument("--json", action="store_true", help="JSON Lines, one object per photo (see below), not a table")
    p.add_argument("--out", help="write annotated copies: this file for one photo (.jpg/.png), else into this "
                   "folder; never over an existing file (-2, -3, ... is added)")
    p.add_argument("--filter", choices=["sunglasses"], help="draw a fun filter instead of the points")
    add_common(p)
    p.set_defaults(func=cmd_predict, takes_videos=True)  # a folder given lends its videos too


def _register_train(verbs) -> None:
    p = verbs.add_parser("train", help="train a keypoint net on youtube_faces_68 or a Kaggle CSV",
                         parents=[commands.DETECTOR])
    p.add_argument("--arch", default="keyface-res", help="keyface-res (ours), naimishnet or conv5bn")
    p.add_argument("--epochs", type=commands.count, default=60, help="most epochs to train (default: 60)")
    p.add_argument("--batch-size", type=commands.count, default=32, help="samples per batch (default: 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 0.002)")
    p.add_argument("--width", type=commands.count, default=32, help="base width of keyface-res")
    p.add_argument("--input-size", type=commands.count, default=96, help="side of the square face crop in pixels (default: 96)")
    p.add_argument("--patience", type=commands.count_or_zero, default=15, help="stop after this many epochs without a better "
                   "validation NME (default: 15)")
    p.add_argument("--seed", type=commands.seed, default=0, help="random seed (default: 0)")
    p.add_argument("--limit", type=commands.count, help="use only the first N samples (quick trials, tests)")
    p.add_argument("--include-devtest", action="store_true",
                   help="also train on LFW DevTest people's frames (their faces then leak into LFW benchmarks)")
    p.add_argument("--kaggle-csv", help="train on a Kaggle 15-point CSV instead of youtube_faces_68")
    p.add_argument("--missing", choices=["mask", "drop", "ffill"], default="mask",
                   help="Kaggle rows with missing points: masked loss, drop the rows, or forward-fill")
    p.add_argument("--run-dir", help="run directory (default: MODELS/runs/keypoints-ARCH-TIME)")
    p.add_argument("--resume", help="continue an interrupted run in this run directory")
    p.add_argument("--name", help="also install the model as MODELS/keypoints/NAME.keras")
    add_common(p, data=True)
    p.set_defaults(func=cmd_train)


def _register_eval(verbs) -> None:
    p = verbs.add_parser("eval", help="NME, RMSE, per-group error, CED plot on youtube_faces_68 test",
                         parents=[commands.DETECTOR])
    p.add_argument("--model", help="keypoint model file or name (default: shipped)")
    p.add_argument("--split", default="test", choices=["test", "train"], help="youtube_faces_68 split (default: test)")
    p.add_argument("--out", default="keypoints-eval", help="directory for metrics.json and ced.png")
    p.add_argument("--precision", choices=PRECISIONS, default=LITE_PRECISION,
                   help=f"run the net with int8 weights, as the pipeline does, or in float32 (default: {LITE_PRECISION})")
    add_common(p, data=True)
    p.set_defaults(func=cmd_eval)


def cmd_train(args) -> int:
    """Train a keypoint net and report where it went."""
    from keyface.keypoints.training.data_sets import load_training_samples, training_config
    from keyface.keypoints.training.train import TrainConfig, train
    run_dir = Path(args.resume) if args.resume else None
    if run_dir is not None:
        if not (run_dir / "config.json").is_file():
            raise KeyfaceError(f"--resume {run_dir}: no config.json there (not a keypoint run directory)")
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    else:
        cfg = training_config(args)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.run_dir) if args.run_dir else models_dir(args.models) / "runs" / f"keypoints-{cfg.model.arch}-{stamp}"
    samples, note = load_training_samples(args, cfg, make_detector(args.detector, args.min_face))
    summary = train(samples, cfg, run_dir, note)
    log.info("trained in %.0f s; best validation NME %.4f; run directory %s",
             summary["train_seconds"], summary["best_val_nme"], run_dir)
    if args.name:
        target = install_copy(run_dir / "model.keras", models_dir(args.models) / "keypoints" / f"{args.name}.keras")
        log.info("installed as %s", target)
    return 0


def cmd_eval(args) -> int:
    """Evaluate a keypoint model on labelled youtube_faces_68 frames."""
    from keyface.keypoints.evaluation.bench import evaluate_model
    from keyface.keypoints.predictor import KeypointPredictor
    predictor = KeypointPredictor.load(args.model, precision=args.precision, models=args.models)
    report = evaluate_model(predictor, data_root(args.data), args.split, make_detector(args.detector), Path(args.out))
    print(json.dumps(report, indent=2))
    return 0


def cmd_predict(args) -> int:
    """Find faces and keypoints in photos; print a table or JSON Lines as each photo is done; draw them."""
    from keyface.keypoints.photos import IMAGE_OUT, annotate_photo, annotated_target, iter_predictions
    from keyface.data.images import is_video_file
    out = Path(args.out) if args.out else None
    folder = out is not None and (args.out.endswith(("/", os.sep)) or out.is_dir())  # "new.d/": a folder to make
    single = out is not None and len(args.photos) == 1 and out.suffix.lower() in IMAGE_OUT and not folder
    if out is not None and out.suffix and out.suffix.lower() not in {*IMAGE_OUT, ".mp4"} and not folder:
        raise KeyfaceError(f"--out {out}: neither a picture keyface writes ({', '.join(IMAGE_OUT)}; .mp4 for a "
                           "video) nor a folder (end a new folder's name with /)")
    if out is not None and out.suffix.lower() in IMAGE_OUT and len(args.photos) > 1 and not folder:
        raise KeyfaceError(f"--out {out} names one picture, but {len(args.photos)} photos were given: "
                           "give a folder for their copies")
    errors = sum(_video_keypoints(clip, args, out) for clip in args.photos if is_video_file(clip))
    photos_only = [p for p in args.photos if not is_video_file(p)]
    with commands.Progress(photos_only, "keypoints") as (count, stream):
        detector = make_detector(args.detector, args.min_face)
        for result, rgb in count(iter_predictions(photos_only, args.model, args.models, detector)):
            if not result.get("error") and not result["faces"]:  # "error" before "faces", as photo_json puts it
                result = {"photo": result["photo"], "error": f"{result['photo']}: no face found", **result}
            if "error" in result:
                errors += 1
                stream.error(result["error"])
            for line in [commands.compact(result)] if args.json else _table_lines(result):
                stream.line(line)
            if out is not None and result["faces"]:
                annotate_photo(result, rgb, annotated_target(out, result["photo"], single), args.filter)
    return 2 if errors else 0


def _video_keypoints(clip: str, args, out: Path | None) -> int:
    """A video's keypoints, a record per frame looked at; drawn into a new .mp4 with --out (the file itself for
    one video, else CLIP_keypoints.mp4 in the folder). 1 if no face was found in it, else 0."""
    from keyface.data.files import free_name, private_dir
    from keyface.data.video import Video, VideoWriter
    from keyface.keypoints.photos import drawn, iter_video_keypoints
    found, writer = 0, None
    with Video(clip, commands.sampling(args)) as video:
        if out is not None:
            single = len(args.photos) == 1 and out.suffix.lower() == ".mp4"
            target = out if single else free_name(private_dir(out) / f"{Path(clip).stem}_keypoints.mp4")
            writer = VideoWriter(target, video.fps / video.sampling.step(video.fps), video.width, video.height)
        try:
            detector = make_detector(args.detector, args.min_face)
            for result, rgb in iter_video_keypoints(video, args.model, args.models, detector):
                found += len(result["faces"])
                print(commands.compact(result) if args.json else "\n".join(_table_lines(result)), flush=True)
                if writer is not None:
                    writer.write(drawn(result, rgb, args.filter))
        finally:
            if writer is not None:
                writer.close()
    if not found:
        print(f"keyface: error: {clip}: no face found", file=sys.stderr)
    return int(not found)


def _table_lines(r: dict) -> list[str]:
    """A photo's (or a video frame's) line and a line per face; none for a photo that failed, whose error is on
    stderr (as identify's is)."""
    if "error" in r:
        return []
    where = r["photo"] if "photo" in r else f"{r['video']} frame {r['frame']} ({r['time']:.2f} s)"
    lines = [f"{where}: {len(r['faces'])} face(s)"]
    for f in r["faces"]:
        box = ", ".join(f"{v:.0f}" for v in f["box"])
        lines.append(f"  face {f['face']}: box [{box}], {len(f['keypoints'])} keypoints, score {f['score']:.3f}")
    return lines
