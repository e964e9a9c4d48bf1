"""`keyface verify | embed`: two photos compared, and every face's box, keypoints and embedding; no gallery."""
from __future__ import annotations

import json

from keyface.data.errors import KeyfaceError
from keyface.recognition.cli.commands import (FACES_JSON_HELP, PHOTOS_HELP, RECOGNISER, WORKERS, Progress, distance,
                                              faces_or_error, photo_workers, recogniser)
from keyface.recognition.cli.hints import with_hint
from keyface.recognition.answers import photo_json, track_json, verify_json, video_error_json
from keyface.recognition.core.video import VideoRun, track_video
from keyface.recognition.facade import in_order

VERIFY_EPILOG = ("exit status: 0 same person, 1 different people, 2 an error (a missing photo, no face, several "
                 "faces without --largest-face). --json prints one line: {\"same\":...,\"distance\":...,"
                 "\"threshold\":...}.")


def register(sub) -> None:
    """Add verify and embed."""
    p = sub.add_parser("verify", help="are two photos the same person? (exit 0 same, 1 different, 2 error)",
                       epilog=VERIFY_EPILOG, parents=[RECOGNISER])
    p.add_argument("photo_a", metavar="A", help="the first photo file (one face, or --largest-face)")
    p.add_argument("photo_b", metavar="B", help="the second photo file")
    p.add_argument("--json", action="store_true", help="one JSON line: same, distance, threshold (with error, and same "
                   "and distance null, when a photo cannot be used)")
    p.add_argument("--largest-face", action="store_true", help="in a photo with several faces, take the largest")
    p.add_argument("--threshold", type=distance, help="distance cut: within it the two faces are the same "
                   "person (default: the model's calibrated cut)")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("embed", help="each face's box, keypoints and embedding (JSON Lines)",
                       epilog=FACES_JSON_HELP + " A video gives a line per track: its times, frames, best box and "
                       "the mean embedding of its best sightings.", parents=[WORKERS, RECOGNISER])
    p.add_argument("photos", nargs="+", metavar="PHOTO", help=PHOTOS_HELP + "; or video files")
    p.add_argument("--json", action="store_true", help="accepted for symmetry: the output is always JSON Lines")
    p.set_defaults(func=cmd_embed, takes_videos=True)  # a folder given lends its videos too


def cmd_verify(args) -> int:
    """Same person (exit 0) or not (exit 1)."""
    rec = recogniser(args)
    try:
        same, apart = rec.verify(args.photo_a, args.photo_b)
    except KeyfaceError as exc:
        if args.json:  # a script reading stdout hears of it too, as from identify and embed; the line goes to stderr
            print(json.dumps(verify_json(None, None, _threshold_or_none(rec), with_hint(exc)), separators=(",", ":")))
        raise
    result = verify_json(same, apart, rec.threshold)
    print(json.dumps(result, separators=(",", ":")) if args.json else
          f"{'same person' if same else 'different people'} (distance {apart:.4f}, threshold {rec.threshold:.4f})")
    return 0 if same else 1


def _threshold_or_none(rec) -> float | None:
    """verify's threshold, or None where there is none (a model not calibrated: the error being reported)."""
    try:
        return rec.threshold
    except KeyfaceError:
        return None


def cmd_embed(args) -> int:
    """Boxes, keypoints and embeddings of every face, one JSON line per photo as soon as it is done; a line per
    track (its mean embedding) for a video."""
    from keyface.data.images import is_video_file
    videos = {p for p in args.photos if is_video_file(p)}
    workers = 1 if videos else photo_workers(args, len(args.photos))
    rec, errors = recogniser(args), []
    about = {"embedder": rec.embedder.name, "version": rec.embedder.version}
    with Progress(args.photos, "embedding") as (count, stream):
        for photo, found in count(in_order(lambda p: None if p in videos else rec.faces(p)[1], args.photos, workers)):
            if photo in videos:
                _embed_video(rec, photo, about, stream, errors)
                continue
            faces, error = faces_or_error(photo, found)
            if error:
                stream.failed(error, errors)
            stream.json(photo_json(photo, faces, error, embedding=True, **about))
    return 2 if errors else 0


def _embed_video(rec, path: str, about: dict, stream, errors: list) -> None:
    """A line per track of a video: where and when it was seen, and its mean embedding."""
    from keyface.data.video import Video
    from keyface.recognition.core.video import no_face_seen
    tracks = 0
    try:
        with Video(path) as video:
            for track in track_video(video, VideoRun(rec)):
                stream.json(track_json(path, track, named=False, **about))
                tracks += 1
        error = None if tracks else no_face_seen(path)
    except KeyfaceError as exc:
        error = with_hint(exc)
    if error:  # said as a photo's: on stderr, and in the JSON Lines
        stream.failed(error, errors)
        stream.json(video_error_json(path, error, named=False, **about))
