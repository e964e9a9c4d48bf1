"""The flags several commands share (the recogniser's, the gallery's, a video's frames), as parsers that
commands take as parents, and argument types that range-check numbers, so that a wrong flag value is a
one-line usage error."""
from __future__ import annotations

import argparse
import math
import os

from keyface.data.errors import KeyfaceError
from keyface.detection.boxes import MIN_FACE
from keyface.detection.detector import DEFAULT_DETECTOR, DETECTORS
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER, EMBEDDER_NAMES
from keyface.runtime.networks import PRECISIONS, set_threads


def _number(kind, low: float, high: float, low_open: bool = False, high_open: bool = False, what: str = ""):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value
    return parse


distance = _number(float, 0.0, 2.0, what="a cosine distance from 0 to 2")
rate = _number(float, 0.0, 1.0, low_open=True, high_open=True, what="a share strictly between 0 and 1")
probability = _number(float, 0.0, 1.0, what="a probability from 0 to 1")
count = _number(int, 1, 10**9, what="1 or more")
port = _number(int, 1, 65535, what="a TCP port from 1 to 65535")
face_px = _number(float, 8, 100_000, what="a face width in pixels, 8 or more")
frame_rate = _number(float, 0.0, 1000.0, low_open=True, what="frames a second, above 0 and up to 1000")
seconds = _number(float, 0.0, 1e7, what="seconds, 0 or more")


MAX_DEFAULT_WORKERS = 4  # photos at once unless told: each holds its pixels and, on a big photo, ~140 MB of buffers


def _flags(title: str) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
    """A parser of flags several commands take through add_parser(parents=[...]) (argparse's way to share
    them), and its group, under whose title --help lists them after each command's own flags. Their
    defaults live here: a command changes none with set_defaults, since every command shares the flag."""
    parser = argparse.ArgumentParser(add_help=False)
    return parser, parser.add_argument_group(title)


def _joined(*parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of several such parsers as one (groups of one title merge)."""
    return argparse.ArgumentParser(add_help=False, parents=list(parents))


WORKERS, _speed = _flags("speed")  # how many photos are worked on at once
_speed.add_argument("--workers", type=count, help=f"photos worked on at once, sharing the cores (default: one a "
                    f"core, up to {MAX_DEFAULT_WORKERS}, when there are several photos; videos and --head go one at "
                    "a time)")

PRECISION, _models = _flags("models")  # for commands that run an embedder
_models.add_argument("--precision", choices=PRECISIONS, help="run the embedding and keypoint networks with int8 "
                     "weights (~2.5x faster) or in float32 (default: int8 keypoints, and the embedder's own: int8 "
                     "for dlib-resnet and inception, else float32)")

DETECTOR, _detection = _flags("face detection")  # for commands that find faces
_detection.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                        help=f"face detector (default: {DEFAULT_DETECTOR}; mtcnn is ~10x slower end to end)")
_detection.add_argument("--min-face", type=face_px, default=MIN_FACE, metavar="PX",
                        help=f"smallest face to look for, in pixels wide (default: {MIN_FACE:g}, about 10 px "
                        "between the eyes); a larger one is faster on big photos")

GALLERY, _gallery = _flags("gallery")  # for the commands that read or write one
_gallery.add_argument("--gallery", help="gallery file, or a PostgreSQL database as postgresql://USER@HOST/DB "
                      "(default: $KEYFACE_GALLERY, then the per-user gallery.db)")

EMBEDDER, _embedder = _flags("models")
_embedder.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                       help=f"{', '.join(EMBEDDER_NAMES)} (default: {DEFAULT_EMBEDDER}, the most accurate measured)")
_embedder.add_argument("--embedder-model", help="embedder model file (default: models dir, then shipped)")
_embedder.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
_embedder.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")

RECOGNISER = _joined(EMBEDDER, PRECISION, DETECTOR)  # what makes a recogniser; --threshold is each command's

SAMPLING, _sampling = _flags("videos")  # which frames of a video are looked at
_sampling.add_argument("--every", type=count, metavar="N", help="videos: look at every N-th frame (default: 15 "
                       "frames a second)")
_sampling.add_argument("--fps", type=frame_rate, metavar="F", help="videos: look at F frames a second (default: 15)")
_sampling.add_argument("--start", type=seconds, default=0.0, metavar="S", help="videos: start S seconds in")
_sampling.add_argument("--end", type=seconds, metavar="S", help="videos: stop S seconds in")

_VIDEO_OUT, _video = _flags("videos")
_video.add_argument("--camera", type=int, metavar="N", help="read a live camera (V4L2 device N) instead of files")
_video.add_argument("--out", help="videos: write a copy with numbered, named boxes to this new .mp4 file")
_video.add_argument("--show", action="store_true", help="show the video and its boxes in a window as it runs "
                    "(needs a display; press q to stop)")
VIDEO = _joined(_VIDEO_OUT, SAMPLING)  # for identify


def photo_workers(args, photos: int) -> int:
    """Photos worked on at once: --workers, else one a core up to MAX_DEFAULT_WORKERS, never more than there are
    photos; the cores are shared out between them (LiteRT threads, set before any network is made). On 2 cores
    LFW photos are identified 1.23-1.31x faster than one at a time (`keyface bench speed --identify 400`)."""
    cores = os.cpu_count() or 1
    workers = min(args.workers or min(cores, MAX_DEFAULT_WORKERS), max(photos, 1))
    if workers > 1:
        set_threads(max(1, cores // workers))
    return workers


def sampling(args):
    """The frames the flags ask for."""
    from keyface.data.video import Sampling
    _check_sampling(args)
    return Sampling(args.every, args.fps, args.start, args.end)


def _check_sampling(args) -> None:
    """--every beside --fps, or an --end not after --start, refused."""
    if args.every and args.fps:
        raise KeyfaceError("give --every or --fps, not both")
    if args.end is not None and args.end <= args.start:
        raise KeyfaceError(f"--end {args.end:g} must come after --start {args.start:g}")


def check_video_flags(args) -> None:
    """The video flags' values, checked before any model loads; --show needs a screen."""
    _check_sampling(args)
    if args.show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise KeyfaceError("--show needs a display (no DISPLAY or WAYLAND_DISPLAY here); leave it out on a server")
