"""What every command shares: the flags several take (as argparse parents) and the argument types that
range-check numbers, the gallery and the recogniser the flags name, and how results stream (each photo's
result printed the moment it is done, as text or one JSON line, with a progress bar on stderr only when a
person is watching it and the batch is worth one); and `keyface identify`."""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

from keyface.data.errors import EmptyGalleryError, KeyfaceError
from keyface.data.paths import gallery_location
from keyface.detection.detector import MIN_FACE
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER, EMBEDDER_NAMES
from keyface.recognition.cli.hints import with_hint
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, DETECTORS
from keyface.recognition.facade import MIN_PROBABILITY
from keyface.runtime.networks import PRECISIONS, set_threads

log = logging.getLogger(__name__)


# The flags several commands share, as parsers that commands take as parents; and argument types that
# range-check numbers, so that a wrong flag value is a one-line usage error.

def number_type(kind, low: float, high: float, low_open: bool = False, high_open: bool = False, what: str = ""):
    """An argparse type: a number of `kind` from `low` to `high` (bounds open where said); `what` says the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value
    return parse


distance = number_type(float, 0.0, 2.0, what="a cosine distance from 0 to 2")
rate = number_type(float, 0.0, 1.0, low_open=True, high_open=True, what="a share strictly between 0 and 1")
probability = number_type(float, 0.0, 1.0, what="a probability from 0 to 1")
count = number_type(int, 1, 10**9, what="a whole number from 1 to 1000000000")
count_or_zero = number_type(int, 0, 10**9, what="a whole number from 0 to 1000000000")
seed = number_type(int, 0, 2**32 - 1, what="a seed: a whole number from 0 to 4294967295")
port = number_type(int, 1, 65535, what="a TCP port from 1 to 65535")
face_px = number_type(float, 8, 100_000, what="a face width in pixels, 8 or more")
frame_rate = number_type(float, 0.0, 1000.0, low_open=True, what="frames a second, above 0 and up to 1000")
seconds = number_type(float, 0.0, 1e7, what="seconds, 0 or more")


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
                    f"core, up to {MAX_DEFAULT_WORKERS}, when there are several photos; videos, and identify --head, go one at a "
                    "time)")

PRECISION, _models = _flags("models")  # for commands that run an embedder
_models.add_argument("--precision", choices=PRECISIONS, help="run the embedding and keypoint networks with int8 "
                     "weights (~3x faster) or in float32 (default: int8 keypoints, and the embedder's own: int8 "
                     "for dlib-resnet and inception, else float32)")

DETECTOR, _detection = _flags("face detection")  # for commands that find faces
_detection.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                        help=f"face detector (default: {DEFAULT_DETECTOR}; mtcnn is ~5x slower on big photos, ~7x on "
                        "portraits)")
_detection.add_argument("--min-face", type=face_px, default=MIN_FACE, metavar="PX",
                        help=f"smallest face to look for, in pixels wide (default: {MIN_FACE:g}, about 10 px "
                        "between the eyes); a larger one is faster on big photos. It sets the finest scale "
                        "searched, not a filter: a face a little narrower may still be found")

GALLERY, _gallery = _flags("gallery")  # for the commands that read or write one
_gallery.add_argument("--gallery", help="gallery file, or a PostgreSQL database as postgresql://USER@HOST/DB "
                      "(default: $KEYFACE_GALLERY, then the per-user gallery.db)")

EMBEDDER, _embedder = _flags("models")
_embedder.add_argument("--embedder", help=f"{', '.join(EMBEDDER_NAMES)} (default: a gallery's own, for the commands "
                       f"that open one; else {DEFAULT_EMBEDDER}, the most accurate measured)")
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
    return Sampling(args.every, args.fps, args.start, args.end)


def check_video_flags(args, videos: set) -> None:
    """The video flags' values, checked in their own words before any model loads or video is read (a run of
    photos alone never imports a video module); --show needs a screen; --out names one video's new copy."""
    if args.every and args.fps:
        raise KeyfaceError("give --every or --fps, not both")
    if args.end is not None and args.end <= args.start:
        raise KeyfaceError(f"--end {args.end:g} must come after --start {args.start:g}")
    if args.show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise KeyfaceError("--show needs a display (no DISPLAY or WAYLAND_DISPLAY here); leave it out on a server")
    if args.camera is not None and args.photos:  # a camera runs until stopped: the files would never be reached
        raise KeyfaceError("--camera N reads a live camera instead of files: give one or the other")
    sources = sum(p in videos for p in args.photos) + (args.camera is not None)  # one video given twice: two
    if args.out and sources != 1:
        raise KeyfaceError("--out writes one video's annotated copy: give one video or --camera N "
                           + ("(photos are annotated with --annotate DIR)" if not sources else f"(not {sources})"))
    if args.annotate and sources and not any(p not in videos for p in args.photos):
        raise KeyfaceError("--annotate DIR draws on photos; a video's annotated copy is --out FILE.mp4")
    if args.annotate and sources:
        print(f"keyface: --annotate draws on the photos only; the {sources} video(s) are not annotated (a video's "
              "annotated copy is --out FILE.mp4)", file=sys.stderr)
    if args.out:
        from keyface.data.video import checked_video_target
        checked_video_target(args.out)


def check_naming_flags(args, videos: set) -> None:
    """One way of naming faces at a time: the distance cut (--threshold, --far) or the softmax head (--head,
    --min-probability); a flag of the way not taken would be ignored, so it is refused."""
    if args.head and (videos or args.camera is not None):
        raise KeyfaceError("--head names faces in photos; videos are named by their tracks' nearest people")
    if args.head and (args.threshold is not None or args.far is not None):
        raise KeyfaceError("--threshold and --far set the distance cut; with --head the softmax head names faces "
                           "(set its --min-probability instead)")
    if args.threshold is not None and args.far is not None:
        raise KeyfaceError("--threshold sets the distance cut itself and --far has it chosen from the model's "
                           "calibration: give one of them")
    if args.min_probability is not None and not args.head:
        raise KeyfaceError("--min-probability is the softmax head's: give --head too, or set the distance cut "
                           "with --threshold or --far")


# Output: each photo's result printed the moment it is done.

PHOTOS_HELP = "photo files, or folders: every image in a folder, recursively, in sorted order"
VIDEO_HELP = ("A video is read frame by frame (15 frames a second by default); faces are followed from frame to "
              "frame and each track is named once, by a vote of its best sightings: a line per track as it "
              "closes, or with --json {\"video\", \"threshold\", \"track\", \"name\", \"distance\", "
              "\"first\": {\"time\", \"frame\"}, \"last\", \"frames\", \"box\", \"matches\"}.")

JSON_LINES_HELP = ("--json prints JSON Lines: one compact object per photo per line, in the order given, as soon "
                   "as that photo is done. Boxes are [x0, y0, x1, y1] in pixels of the photo (origin top-left, "
                   "after EXIF rotation), inside it; coordinates are rounded to 0.1 px. Faces are numbered left to "
                   "right (\"face\": 1, 2, ...). A photo that failed has \"error\".")
FACES_JSON_HELP = JSON_LINES_HELP + " Distances are rounded to 4 decimals, embeddings to 6."
MIN_PHOTOS_FOR_BAR = 4  # a bar for three photos or fewer is only flicker


def compact(obj) -> str:
    """One JSON line, no spaces."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Stream:
    """Prints result lines as they come; keeps the progress bar (if any) below them on stderr."""

    def __init__(self, bar=None):
        self.bar = bar

    def line(self, text: str) -> None:
        """One line of output on stdout, flushed at once (a pipe reader sees it now, not at the end)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text)
        sys.stdout.flush()

    def error(self, text: str) -> None:
        """A photo's error on stderr, as it happens (the run goes on and exits 2 at the end)."""
        self.note(f"error: {text}")

    def note(self, text: str) -> None:
        """A line for the person at the terminal (not a result) on stderr: what was written where."""
        if self.bar is not None:
            self.bar.write(f"keyface: {text}", file=sys.stderr)
        else:
            print(f"keyface: {text}", file=sys.stderr, flush=True)

    def failed(self, error: str, errors: list) -> None:
        """A photo's or a video's error: kept in `errors` (the exit status says so at the end) and said now."""
        errors.append(error)
        self.error(error)

    def json(self, obj) -> None:
        """One JSON Lines record."""
        self.line(compact(obj))


class Progress:
    """`with Progress(photos, desc) as (count, stream)`: `count(results)` passes a loop's results through,
    ticking a tqdm bar on stderr as each is handled (when stderr is a terminal and there are more than 3
    photos); `stream` prints. The bar counts photos done, not photos taken: several may be taken ahead while
    earlier ones finish."""

    def __init__(self, photos: list, desc: str):
        self.bar = None
        if len(photos) >= MIN_PHOTOS_FOR_BAR and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=len(photos), desc=desc, unit="photo", file=sys.stderr, leave=False)

    def __enter__(self) -> tuple[Callable[[Iterable], Iterable], Stream]:
        return self.count, Stream(self.bar)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def count(self, results: Iterable) -> Iterable:
        """The results, each ticking the bar as the loop takes the next."""
        return results if self.bar is None else self._ticking(results)

    def _ticking(self, results: Iterable) -> Iterator:
        for result in results:
            yield result
            self.bar.update(1)


def register(sub) -> None:
    """Add identify."""
    p = sub.add_parser("identify", help="name every face in photos and videos against the gallery",
                       epilog=FACES_JSON_HELP + " An identified face has \"name\", \"distance\" (the nearest "
                       "person's) and \"matches\"; named by the softmax head (--head), the head's \"probability\" too. "
                       + VIDEO_HELP,
                       parents=[WORKERS, VIDEO, GALLERY, RECOGNISER])
    p.add_argument("photos", nargs="*", metavar="PHOTO", help=PHOTOS_HELP + "; video files (known by their content) "
                   "give a line per track")
    p.add_argument("--json", action="store_true", help="JSON Lines, one object per photo (see below)")
    p.add_argument("--top", type=count, default=3, help="matches to list per face")
    p.add_argument("--annotate", help="directory for copies with boxes, keypoints, face numbers and names")
    p.add_argument("--head", action="store_true", help="name faces with the gallery's softmax head (train-head)")
    p.add_argument("--min-probability", type=probability, help="with --head: unknown below this head "
                   f"probability (default: {MIN_PROBABILITY})")
    p.add_argument("--far", type=rate, help="name at most this share of strangers (people not enrolled), by the "
                   "model's calibration on held-out people (default: its stored cut, 0.01)")
    p.add_argument("--index", choices=["exact", "faiss", "hnsw"],
                   help="a gallery file: exact NumPy search (default), or FAISS for very large galleries (pip "
                   "install 'keyface[ann]'); PostgreSQL: pgvector's HNSW index (default) or exact")
    p.add_argument("--threshold", type=distance, help="distance cut: beyond it a face is unknown (default: the "
                   "model's calibrated cut)")
    p.set_defaults(func=cmd_identify, takes_videos=True)  # a folder given lends its videos too


def build_settings(args) -> dict:
    """The flags' settings for a recogniser besides its embedder and precision (facade.build's keywords)."""
    return dict(models=getattr(args, "models", None), model=getattr(args, "embedder_model", None),
                keypoint_model=getattr(args, "keypoint_model", None),
                threshold=getattr(args, "threshold", None), far=getattr(args, "far", None),
                detector=getattr(args, "detector", DEFAULT_DETECTOR), min_face=getattr(args, "min_face", None),
                several_faces="largest" if getattr(args, "largest_face", False) else "refuse")


def recogniser(args, made: dict | None = None):
    """The recogniser the flags name: --embedder and --precision, else a gallery's own (`made`, as
    facade.made_by gives it), else the defaults."""
    from keyface.recognition.facade import build, embedder_for
    name, precision = embedder_for(args.embedder, args.precision, made or {})
    return build(name, precision=precision, **build_settings(args))


def gallery_path(args) -> Path | str:
    """The gallery the command names: --gallery (a file or a postgresql:// URI), else $KEYFACE_GALLERY, else
    the per-user gallery file."""
    if args.gallery is not None and not args.gallery.strip():
        raise KeyfaceError("--gallery is empty: give a gallery file or a postgresql:// URI, or leave the flag out "
                           "for the default")
    return gallery_location(args.gallery)


def open_gallery(args, create: bool = False, models: bool = False):
    """The gallery the flags name, embedding with its own embedder and precision, or refused if --embedder or
    --precision name others; only `create` makes a new one (with --embedder's, or the default). Without
    `models` (people, rename, remove) no model loads."""
    from keyface.recognition.facade import open_gallery as opened
    location = gallery_path(args) if create else existing_gallery(args)
    return opened(location, create, models, getattr(args, "embedder", None), getattr(args, "precision", None),
                  **build_settings(args))


def report_errors(errors: list) -> int:
    """Print each error (a library error or a line) with its hint; 2 if there were any."""
    for e in errors:
        print(f"keyface: error: {with_hint(e)}", file=sys.stderr)
    return 2 if errors else 0


def existing_gallery(args) -> Path | str:
    """The gallery, whose file must exist: checked before any model loads, and never created (a database is
    checked when opened)."""
    path = gallery_path(args)
    if isinstance(path, Path) and path.is_dir():
        raise KeyfaceError(f"{path} is a folder, not a gallery file")
    if isinstance(path, Path) and not path.is_file():
        raise EmptyGalleryError(f"gallery not found: {path}: enrol people first", path)
    return path


def cmd_identify(args) -> int:
    """Identify every face in every photo, and every track in every video, in the order given; each result
    printed as soon as it is done."""
    from keyface.data.images import is_video_file
    if not args.photos and args.camera is None:
        raise KeyfaceError("give photos or videos to identify, or --camera N")
    videos, errors = {p for p in args.photos if is_video_file(p)}, []
    check_video_flags(args, videos)  # before any model loads, not after the whole video
    check_naming_flags(args, videos)
    own_bars = bool(videos) or args.camera is not None  # a video shows its frames' progress instead
    workers = 1 if own_bars or args.head else photo_workers(args, len(args.photos))
    with open_gallery(args, models=True) as gallery:
        index = gallery.search_index(args.index)  # an empty gallery: refused before anything else is asked of it
        if args.head:
            gallery.softmax_head()  # missing: one error for the run, not one a photo
        threshold = gallery.identify_threshold(head=args.head)
        with Progress([] if own_bars else args.photos, "identifying") as (count, stream):
            if args.camera is not None:
                _identify_video(gallery, args.camera, index, args, stream, errors)
            if own_bars:  # videos among the photos: one at a time, in the order given
                for item in args.photos:
                    if item in videos:
                        _identify_video(gallery, item, index, args, stream, errors)
                    else:
                        _identify_one(*next(_identified(gallery, [item], index, args, 1)), threshold, args, stream,
                                      errors)
            else:
                for item, result in count(_identified(gallery, args.photos, index, args, workers)):
                    _identify_one(item, result, threshold, args, stream, errors)
    return 2 if errors else 0


def _identify_video(gallery, source, index, args, stream, errors: list) -> None:
    """A video's or a camera's tracks, printed as they close (the video printer loads only for a video)."""
    from keyface.recognition.cli.video import identify_video
    identify_video(gallery, source, sampling(args), index, args, stream, errors)


def _identify_one(photo: str, result, threshold: float | None, args, stream, errors: list) -> None:
    """One photo's faces (or its error: `result` is what Gallery.identify gave or raised) printed, and
    annotated if asked; `threshold` is the gallery's identify cut (None: a softmax head names faces)."""
    faces, error = faces_or_error(photo, result)
    copy = {}  # where the annotated copy went: said on stderr, and in the JSON
    if args.annotate and faces:
        from keyface.recognition.core.annotate import annotate_identities
        copy["annotated"] = str(annotate_identities(photo, faces, Path(args.annotate)))
        stream.note(f"wrote {copy['annotated']}")  # a name not yet taken: which copy is this photo's
    if error:
        stream.failed(error, errors)
    if args.json:
        from keyface.recognition.answers import photo_json  # the JSON shapes: loaded for --json only
        stream.json(photo_json(photo, faces, error, threshold=None if threshold is None else round(threshold, 4),
                               **copy))
    else:
        for line in _identity_lines(photo, faces, threshold):
            stream.line(line)


def _identified(gallery, photos: list, index, args, workers: int):
    """(photo, its faces or its KeyfaceError) for each photo, in order, `workers` at once."""
    least = MIN_PROBABILITY if args.min_probability is None else args.min_probability
    return gallery.identify_all(photos, args.top, index, args.head, least, workers)


def faces_or_error(photo: str, result) -> tuple[list, str | None]:
    """A photo's faces and no error; or no faces and the line that says why: its error (with the flag that
    fixes it), or that no face was found (a failure too: the exit status says so)."""
    if isinstance(result, KeyfaceError):
        return [], with_hint(result)
    return result, (None if result else f"{photo}: no face found")


def _identity_lines(photo: str, faces: list, threshold: float | None) -> list[str]:
    """A line per face; threshold None means the softmax head named them."""
    rule = "softmax head" if threshold is None else f"threshold {threshold:.3f}"
    lines = []
    for number, face in enumerate(faces, 1):
        best = ", ".join(f"{m.person} {m.distance:.3f}" for m in face.matches)
        head = "" if face.probability is None else f"probability {face.probability:.3f}; "
        lines.append(f"{photo} face {number}: {face.name or 'unknown'}  ({head}nearest: {best}; {rule})")
    return lines
