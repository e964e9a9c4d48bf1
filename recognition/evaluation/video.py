"""`keyface bench video`: people followed and named in video clips whose every face is known.

Clips are made of the colleagues protocol's photos (LFW DevTest): its 47 colleagues are enrolled from their
first five photos; their other photos and the strangers' (people with one photo) walk through the clips.
"""
from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO_PROTOCOL = (
    "Video protocol: LFW DevTest colleagues (47 people with 10+ photos) enrolled from their first 5 photos; "
    "clips of {seconds:g} s at 30 frames/s, MPEG-4 Part 2 (OpenCV 'mp4v'), each with up to 4 faces of "
    "{min_face:g}-{max_face:g} px drawn from the colleagues' other photos and from strangers (people with one "
    "photo, never enrolled), crossing the frame, walking in and out, growing and shrinking, over a procedural "
    "background. A track is right when it is named as the person it follows (a stranger's: unknown); an ID "
    "switch is a face whose matched track changes from one frame looked at to the next; a fragment is a face "
    "followed by more than one track. frames/s: every frame of the clip decoded, 15 a second looked at, end to "
    "end, with the process on one core (CPU affinity) and on every core. face_recognition (where installed): "
    "HOG upsampled once and encodings on each frame looked at, as its video examples do (no tracking), on "
    "the first 4 s of each size's first clip, one core.")
SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
MATCH_IOU = 0.3


@dataclass
class ClipScore:
    """Tallies over clips: frames, face tracks, tracks named right and wrong, strangers named, ID switches,
    fragments, false tracks (following no face)."""
    clips: int = 0
    frames: int = 0
    tracks: int = 0
    right: int = 0
    wrong_names: int = 0
    strangers: int = 0
    strangers_named: int = 0
    switches: int = 0
    fragments: int = 0
    false_tracks: int = 0
    people_missed: int = 0
    photo_right: int = 0  # tracks whose face's photo, identified alone, is named right
    wrong_where_photo_right: int = 0  # tracks named wrong though their face's photo alone is named right

    def row(self) -> dict:
        """The tallies and their rates."""
        return {**self.__dict__, "right_rate": self.right / max(self.tracks, 1),
                "switches_per_1000_frames": 1000 * self.switches / max(self.frames, 1)}


def make_clips(pools: tuple[list, list], folder: Path, size: str, count: int, seconds: float, seed: int,
               min_face: float = 80.0, max_face: float = 160.0) -> list[tuple[Path, list, object]]:
    """`count` clips of one size written into folder: (path, truth of every frame, the clip's spec). Each
    clip has 2-4 faces, each drawn from the colleagues' photos or the strangers' (`pools`) by a coin."""
    from keyface.data.clips import plan_clip, write_clip
    from keyface.data.images import load_image
    width, height = SIZES[size]
    rng = np.random.default_rng([seed, width])
    clips = []
    for k in range(count):
        faces = int(rng.integers(2, 5))
        chosen = [pool[int(rng.integers(len(pool)))] for pool in (pools[int(rng.random() < 0.5)] for _ in range(faces))]
        spec = plan_clip(chosen, width, height, seconds, rng, faces=faces, min_face=min_face, max_face=max_face)
        path = folder / f"{size}-{k:02d}.mp4"
        clips.append((path, write_clip(spec, path, load_image, seed=seed + k), spec))
    return clips


def walking_faces(lfw, probes: list, strangers: list) -> tuple[list, list]:
    """The faces that walk through the clips: the colleagues' photos not enrolled, and the strangers'
    (photos where MTCNN finds one face, with its box)."""
    from keyface.recognition.evaluation.crowd import canvas_sources
    pools = []
    for chosen in (probes, strangers):
        photos = {p for _, p in chosen}
        pools.append([s for s in canvas_sources(lfw, people={n for n, _ in chosen}) if s.photo in photos])
    return pools[0], pools[1]


def run_clip(recogniser, index, path: Path) -> tuple[list, float, int]:
    """The clip's tracks, the seconds it took end to end, and its frame count."""
    from keyface.data.video import Sampling, Video
    from keyface.recognition.core.video import VideoRun, track_video
    started = time.perf_counter()
    with Video(path, Sampling()) as video:
        tracks = list(track_video(video, VideoRun(recogniser, index)))
        frames = video.length
    return tracks, time.perf_counter() - started, frames


def score_clip(tracks: list, truths: list, enrolled: set[str], score: ClipScore,
               photo_right: dict[int, bool] | None = None) -> None:
    """Add one clip's tracks, scored against its truth, to the tallies; `photo_right` (actor -> whether its
    photo alone is named right) tells the embedder's mistakes from the video's."""
    owner, followed = _match(tracks, truths)
    people = {k: person for frame in truths for k, person, _ in frame}
    score.clips += 1
    score.frames += len(truths)
    for track in tracks:
        actors = owner.get(track.id)
        if not actors:
            score.false_tracks += 1
            continue
        actor = actors.most_common(1)[0][0]
        person = people[actor]
        expected = person if person in enrolled else None
        score.tracks += 1
        score.right += track.name == expected
        if photo_right is not None:
            score.photo_right += photo_right[actor]
            score.wrong_where_photo_right += photo_right[actor] and track.name != expected
        score.wrong_names += track.name is not None and track.name != expected
        score.strangers += expected is None
        score.strangers_named += expected is None and track.name is not None
    for actor, ids in followed.items():
        score.switches += sum(a != b for a, b in zip(ids, ids[1:]))
        score.fragments += max(0, len(set(ids)) - 1)
    score.people_missed += len(set(people) - set(followed))


def peer_fps(path: Path, seconds: float) -> float | None:
    """face_recognition's frames/s on a clip, on one core: each of the 15 frames a second looked at decoded,
    its faces found by HOG (upsampled once, as its docs advise for small faces) and encoded, as its video
    examples do (no tracking); at most `seconds` of the clip. None where it is not installed."""
    try:
        import face_recognition
    except ImportError:
        return None
    from keyface.data.video import Sampling, Video
    started, frames = time.perf_counter(), 0
    with one_core(), Video(path, Sampling(end=seconds)) as video:
        for frame in video.frames():
            boxes = face_recognition.face_locations(frame.rgb, number_of_times_to_upsample=1)
            face_recognition.face_encodings(frame.rgb, boxes)
            frames = frame.index + 1
    return frames / (time.perf_counter() - started)


def photos_named_right(recogniser, index, spec, enrolled: set[str]) -> dict[int, bool]:
    """Whether each actor's photo, identified alone (its face at its source box), is named right at the
    recogniser's identify cut: what the embedder gets right without the video."""
    from keyface.api import face_encodings
    cut, out = recogniser.identify_threshold, {}
    for k, actor in enumerate(spec.actors):
        best = index.search(face_encodings(actor.source.photo, [actor.source.box], recogniser), 1)[0]
        named = best[0].person if best and best[0].distance <= cut else None
        out[k] = named == (actor.source.person if actor.source.person in enrolled else None)
    return out


def _match(tracks: list, truths: list) -> tuple[dict, dict]:
    """Which faces each track followed (track id -> Counter of actors, by frames), and the tracks that
    followed each face, frame by frame (actor -> [track id, ...])."""
    from scipy.optimize import linear_sum_assignment
    from keyface.detection.detector import box_iou
    seen = defaultdict(list)
    for track in tracks:
        for index, box in track.boxes.items():
            seen[index].append((track.id, box))
    owner, followed = defaultdict(Counter), defaultdict(list)
    for index in sorted(seen):
        truth = truths[index] if index < len(truths) else []
        if not truth:
            continue
        overlap = box_iou(np.array([b for _, b in seen[index]]), np.array([b for _, _, b in truth]))
        for row, col in zip(*linear_sum_assignment(-overlap)):
            if overlap[row, col] >= MATCH_IOU:
                owner[seen[index][row][0]][truth[col][0]] += 1
                followed[truth[col][0]].append(seen[index][row][0])
    return owner, followed


@contextmanager
def one_core():
    """This thread, and the threads it starts meanwhile, on one CPU; the CPUs it had, back afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)

