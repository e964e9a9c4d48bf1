"""Enrolment from a video of one person: their track's best distinct sightings become enrolled faces."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keyface.data.errors import NoFaceError, SeveralFacesError
from keyface.data.images import image_sha256
from keyface.data.video import Sampling, Video
from keyface.recognition.core.records import Enrolment
from keyface.recognition.core.video import TrackResult, VideoRun, no_face_seen, track_video

DISTINCT_SECONDS = 1.0  # enrolled sightings of one video are at least this far apart in time


def enrolments_from_video(recogniser, person: str, source, count: int,
                          sampling: Sampling | None = None) -> tuple[list[tuple[str, Enrolment]], bytes | None]:
    """(photo label, enrolment) of the `count` best distinct sightings of the video's one person, and a
    thumbnail of their best; refuses a video with no face, or of several people unless the recogniser
    takes the largest face."""
    with Video(source, sampling or Sampling()) as video:
        tracks = list(track_video(video, VideoRun(recogniser, thumbnails=True)))
    if not tracks:
        raise NoFaceError(no_face_seen(video.name))
    people = _people(tracks, recogniser.threshold)
    if len(people) > 1 and recogniser.several_faces == "refuse":
        raise SeveralFacesError(f"{video.name}: {len(people)} people seen; use a video of one person, "
                                "or take the largest face")
    # a track's box stops at the frame's edge (its face's, as any face's): its width is the part in view
    chosen = max(people, key=lambda group: np.median([t.box[2] - t.box[0] for t in group]))
    file_sha = image_sha256(Path(source))
    ready = []
    for sample in _distinct(sorted((s for t in chosen for s in t.samples), key=lambda s: -s.quality), count):
        sha, source_text = frame_identity(file_sha, Path(source), sample.index)
        ready.append((f"{video.name} frame {sample.index}",
                      Enrolment(person, sha, source_text, sample.box, sample.keypoints, sample.embedding)))
    best = max(chosen, key=lambda t: max(s.quality for s in t.samples))
    return ready, best.thumbnail


def _people(tracks: list[TrackResult], threshold: float) -> list[list[TrackResult]]:
    """Tracks grouped by person: a track joins the first group whose first track's mean embedding is within
    the verify threshold (a person lost and found again is one person), longest tracks first."""
    groups: list[list[TrackResult]] = []
    for track in sorted(tracks, key=lambda t: -t.frames):
        home = next((g for g in groups if 1.0 - float(g[0].embedding @ track.embedding) <= threshold), None)
        if home is None:
            groups.append([track])
        else:
            home.append(track)
    return groups


def _distinct(samples, count: int) -> list:
    """Up to `count` samples, best first, each at least DISTINCT_SECONDS from those already taken."""
    taken = []
    for sample in samples:
        if all(abs(sample.time - t.time) >= DISTINCT_SECONDS for t in taken):
            taken.append(sample)
        if len(taken) == count:
            break
    return taken


def frame_identity(file_sha: str, path: Path, index: int) -> tuple[str, str]:
    """What the gallery keeps of an enrolled video frame: its SHA-256 (the file's, with the frame number)
    and its source, "<video path>#frame=<index>"."""
    return hashlib.sha256(f"{file_sha}#frame={index}".encode()).hexdigest(), f"{path.resolve()}#frame={index}"


def video_frame(source: str) -> tuple[Path, int] | None:
    """The video and frame number an enrolled source names, or None for a photo."""
    path, mark, index = source.rpartition("#frame=")
    return (Path(path), int(index)) if mark and index.isdigit() else None


def frame_enrolment(recogniser, person: str, source: str, sha: str) -> tuple[str, Enrolment]:
    """An enrolled video frame read again and embedded by `recogniser` (reindex), if the video is unchanged."""
    import cv2
    from keyface.data.errors import KeyfaceError
    path, index = video_frame(source)
    if not path.is_file() or frame_identity(image_sha256(path), path, index)[0] != sha:
        raise KeyfaceError(f"cannot reindex: {path} (frame {index}, enrolled for {person}) is missing or changed; "
                           f"nothing was modified: put the video back, or remove {person!r} and enrol them again")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for _ in range(index):
        capture.grab()
    ok, bgr = capture.read()
    capture.release()
    prepared = recogniser.taking("largest").enrolments(person, [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)] if ok else [])
    if not prepared or prepared[0].error:
        raise KeyfaceError(f"cannot reindex: no face in {path} frame {index} (enrolled for {person}); nothing was modified")
    from dataclasses import replace
    return f"{path} frame {index}", replace(prepared[0].enrolment, sha256=sha, source=source)
