"""`keyface bench video`: people followed and named in clips of known faces at three video sizes, with
frames/s on one core and on every core; and, if asked, a long clip's peak memory."""
from __future__ import annotations

import tempfile
from pathlib import Path

from keyface.recognition.cli import commands
from keyface.recognition.cli.tables import print_table, write_report

COLUMNS = [("size", "size", "s"), ("clips", "clips", "d"), ("frames", "frames", ",d"), ("tracks", "tracks", "d"),
           ("right_rate", "right", ".3f"), ("photo_right", "photo right", "d"),
           ("wrong_where_photo_right", "wrong, photo right", "d"), ("wrong_names", "wrong names", "d"), ("strangers", "strangers", "d"),
           ("strangers_named", "strangers named", "d"), ("switches_per_1000_frames", "ID sw./1000 fr.", ".2f"),
           ("fragments", "fragments", "d"), ("false_tracks", "false tracks", "d"), ("people_missed", "missed", "d"),
           ("fps_one_core", "fps 1 core", ".1f"), ("fps_all_cores", "fps all cores", ".1f"),
           ("face_recognition_fps_one_core", "face_recognition fps 1 core", ".1f")]
PEER_SECONDS = 4.0  # face_recognition is timed on this much of a size's first clip: it takes seconds a frame


def register(kinds, common) -> None:
    """Add `bench video`."""
    p = kinds.add_parser("video", help="people followed and named in clips of LFW faces at 640x480, 1280x720 and "
                         "1920x1080: right, wrong, strangers named, ID switches, frames/s on one core and all")
    p.add_argument("--clips", type=commands.count, default=3, help="clips of each size (default: 3)")
    p.add_argument("--seconds", type=commands.seconds, default=10.0, help="each clip's length (default: 10)")
    p.add_argument("--sizes", default=",".join(["640x480", "1280x720", "1920x1080"]), help="comma-separated sizes")
    p.add_argument("--seed", type=commands.seed, default=0, help="seed of the clips (default: 0)")
    p.add_argument("--long-minutes", type=float, default=0.0, help="also one 1280x720 clip this long: its peak "
                   "memory and frames/s (default: 0, none)")
    p.add_argument("--no-peers", action="store_true", help="leave out face_recognition's frames/s even if installed")
    common(p)
    p.set_defaults(func=run_video_bench)


def run_video_bench(args) -> int:
    """Make the clips, follow and name their faces, print the table, write video.json."""
    from keyface.data.errors import KeyfaceError
    from keyface.recognition.evaluation import video
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not sizes or set(sizes) - set(video.SIZES):
        raise KeyfaceError(f"--sizes: choose from {', '.join(video.SIZES)}")
    one, every, index, sources, enrolled = _setup(args)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            rows.append(_size_row(size, args, Path(scratch), (one, every), index, sources, enrolled))
        long = _long_clip(args, Path(scratch), every, index, sources) if args.long_minutes else None
    protocol = video.VIDEO_PROTOCOL.format(seconds=args.seconds, min_face=80, max_face=160)
    print(protocol + "\n")
    print_table(rows, COLUMNS)
    if long:
        print(f"\n{long['minutes']:g}-minute 1280x720 clip: {long['fps']:.1f} frames/s, peak memory {long['peak_rss_mb']:.0f} MB")
    write_report(Path(args.out), "video", {"protocol": protocol, "rows": rows, "long_clip": long,
                                           "embedder": every.embedder.name, "seed": args.seed})
    return 0


def _setup(args):
    """Recognisers for one core and for every core, the colleagues' search index, the faces to walk."""
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.core.search import ExactIndex
    from keyface.recognition.evaluation.video import walking_faces
    from keyface.recognition.evaluation.protocols import colleagues, embed_photos
    from keyface.recognition.facade import build
    from keyface.runtime import networks
    import numpy as np
    lfw = LFW(data_root(args.data))
    enrol, probes, strangers = colleagues(lfw)
    networks.set_threads(1)
    one = build(models=args.models)
    networks.set_threads(0)
    every = build(models=args.models)
    vectors, ok = embed_photos(every, [p for _, p in enrol])
    index = ExactIndex(vectors[ok], np.array([n for n, _ in enrol], dtype=object)[ok])
    return one, every, index, walking_faces(lfw, probes, strangers), {n for n, _ in enrol}


def _size_row(size: str, args, scratch: Path, recognisers, index, sources, enrolled) -> dict:
    """One size's clips, scored on every core, and timed again on one core."""
    from tqdm import tqdm
    from keyface.recognition.evaluation import video
    one, every = recognisers
    score, seconds, frames, one_seconds, one_frames, peer = video.ClipScore(), 0.0, 0, 0.0, 0, None
    for path, truths, spec in tqdm(video.make_clips(sources, scratch, size, args.clips, args.seconds, args.seed),
                                   desc=f"{size} clips", unit="clip"):
        tracks, took, n = video.run_clip(every, index, path)
        video.score_clip(tracks, truths, enrolled, score, video.photos_named_right(every, index, spec, enrolled))
        seconds, frames = seconds + took, frames + n
        with video.one_core():
            _, took, n = video.run_clip(one, index, path)
        one_seconds, one_frames = one_seconds + took, one_frames + n
        peer = peer if peer is not None or args.no_peers else video.peer_fps(path, PEER_SECONDS)
    return {"size": size, **score.row(), "fps_one_core": one_frames / one_seconds, "fps_all_cores": frames / seconds,
            "face_recognition_fps_one_core": peer}


def _long_clip(args, scratch: Path, every, index, sources) -> dict:
    """A long 1280x720 clip run on every core: frames/s and the process's peak memory."""
    from keyface.recognition.evaluation import video
    from keyface.recognition.evaluation.speed import peak_rss_mb
    (path, _, _), = video.make_clips(sources, scratch, "1280x720", 1, args.long_minutes * 60, args.seed + 1000)
    tracks, took, frames = video.run_clip(every, index, path)
    return {"minutes": args.long_minutes, "frames": frames, "tracks": len(tracks), "fps": frames / took,
            "peak_rss_mb": peak_rss_mb()}
