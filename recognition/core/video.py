"""People in a video or a camera stream: every sampled frame's faces found and tracked, a few good
sightings of each track embedded, and each track named once, when it closes, by a vote of its sightings
weighted by their quality ("unknown" wins where most of the weight is beyond the identify cut, or where
fewer than MIN_VOTES sightings point to the winner)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from keyface.data.video import Frame, Video
from keyface.detection.detector import within
from keyface.keypoints.predictor import align_batch
from keyface.recognition.core.search import Match
from keyface.recognition.core.tracking import MIN_SIGHTINGS, Sample, Track, Tracker, sighting_quality

SPLIT_FACTOR = 1.5  # a sighting this many verify thresholds from its track's embeddings is someone else
RELINK_SAMPLES = 3  # a track's first sightings (its first second or so) may join a track that went missing
MIN_VOTES = 2  # a track is named only when at least this many of its sightings point to that person


@dataclass(frozen=True, repr=False)
class TrackResult:
    """One face followed through a video, with its answer: name (None: unknown), the distance of its
    sightings' mean embedding to that person (or to the nearest one), when it was seen (frames and
    seconds), in how many frames, its best sighting's box, and its box in every frame it was seen in."""
    id: int
    name: str | None
    distance: float | None
    matches: tuple[Match, ...]
    first_frame: int
    last_frame: int
    first_time: float
    last_time: float
    frames: int
    box: tuple[float, float, float, float]
    embedding: np.ndarray | None = None
    boxes: dict = field(default_factory=dict)
    samples: tuple[Sample, ...] = ()
    thumbnail: bytes | None = None

    def __repr__(self) -> str:
        return (f"TrackResult(id={self.id}, name={self.name!r}, frames {self.first_frame}-{self.last_frame}, "
                f"{self.first_time:.2f}-{self.last_time:.2f} s)")

    def to_json(self, named: bool = True, embedding: bool = False) -> dict:
        """The track as every output gives it (JSON Lines, the API): with its name, distance and nearest people
        if `named` (identify), its mean embedding (6 decimals) if asked (embed)."""
        out = {"track": self.id}
        if named:
            out.update(name=self.name or "unknown",
                       distance=None if self.distance is None else round(float(self.distance), 4))
        out.update({"first": {"time": round(self.first_time, 3), "frame": self.first_frame},
                    "last": {"time": round(self.last_time, 3), "frame": self.last_frame},
                    "frames": self.frames, "box": [round(float(v), 1) for v in self.box]})
        if named:
            out["matches"] = [{"person": p, "distance": round(float(d), 4)} for p, d in self.matches]
        if embedding and self.embedding is not None:
            out["embedding"] = [round(float(x), 6) for x in self.embedding]
        return out


@dataclass
class VideoRun:
    """What a video run needs besides the frames: the recogniser, the gallery's search index (None: only
    track and embed, as enrolment does), how many nearest people to list, and a callback per frame."""
    recogniser: object
    index: object | None = None
    top: int = 3
    on_frame: Callable | None = None
    thumbnails: bool = False
    guesses: dict = field(default_factory=dict)  # track id -> the name its sightings point to so far
    frame_size: tuple[int, int] = (0, 0)  # width, height: the boxes reported stop at the frame's edges


def track_video(video: Video, run: VideoRun) -> Iterator[TrackResult]:
    """Each track of the video's sampled frames, as it closes (and the rest at the end); tracks seen too
    seldom to be a face (Track.is_face) are dropped as false alarms."""
    rec = run.recogniser
    tracker = Tracker(min(rec.identify_threshold, rec.threshold), SPLIT_FACTOR * rec.threshold)
    try:
        for frame in video.frames():
            closed = _frame(frame, tracker, run)
            yield from (r for r in (_answer(t, run) for t in closed) if r is not None)
    finally:
        pending = tracker.close_all()
    yield from (r for r in (_answer(t, run) for t in pending) if r is not None)


class Looks:
    """The faces of one frame, keypoints and embeddings made on demand and kept: the tracker asks for the
    looks of faces it cannot tell apart by place, sampling for the sightings it keeps."""

    def __init__(self, frame: Frame, detections: list, recogniser):
        self.frame, self.detections, self.rec, self.made = frame, detections, recogniser, {}

    def __call__(self, k: int) -> np.ndarray:
        """The k-th face's unit embedding."""
        return self.faces([k])[0][1]

    def faces(self, wanted: list[int]) -> list[tuple]:
        """(face with keypoints, embedding) of each face asked for; the missing ones made in one pass."""
        todo = [k for k in wanted if k not in self.made]
        if todo:
            rgb, spec = self.frame.rgb, self.rec.embedder.spec
            faces = self.rec.pipeline.faces_at(rgb, [self.detections[k] for k in todo])
            for k, face, vector in zip(todo, faces, self.rec.embedder.embed(align_batch(rgb, faces, spec))):
                self.made[k] = (face, vector)
        return [self.made[k] for k in wanted]


def no_face_seen(video: str) -> str:
    """What a video with no track says: a face glimpsed in too few frames is not one."""
    return f"{video}: no face found (a face counts once seen in {MIN_SIGHTINGS} of the frames looked at)"


def video_source_tracks(source, run: VideoRun, sampling=None) -> Iterator[TrackResult]:
    """track_video() on a video file's path or a camera's index, opened with `sampling` (default: 15 frames a
    second) and closed after, or on a Video already open."""
    from keyface.data.video import Sampling
    if isinstance(source, Video):
        yield from track_video(source, run)
        return
    with Video(source, sampling or Sampling()) as opened:
        yield from track_video(opened, run)


def _frame(frame: Frame, tracker: Tracker, run: VideoRun) -> list[Track]:
    """Detect, track and sample one frame; the tracks that closed."""
    # left to right, as a detector gives them: faces that come into view together are numbered as a photo's are
    detections = run.recogniser.pipeline.detector.detect(frame.rgb)
    run.frame_size = (frame.rgb.shape[1], frame.rgb.shape[0])
    looks = Looks(frame, detections, run.recogniser)
    owners, closed = tracker.update(frame.index, frame.time, [d.box for d in detections], looks)
    wanted = [k for k, t in enumerate(owners) if t.wants_sample(frame.time)]
    for k, (face, vector) in zip(wanted, looks.faces(wanted)):
        _sample(frame, owners[k], face, vector, tracker, run, detections[k].box)
    if run.on_frame is not None:
        run.on_frame(frame, [(t.id, within(t.boxes[frame.index], *run.frame_size), run.guesses.get(t.id))
                             for t in owners])
    return closed


def _sample(frame: Frame, track: Track, face, vector: np.ndarray, tracker: Tracker, run: VideoRun,
            detected) -> None:
    """Keep an embedded sighting with its track: splitting the track if it is another person's face, joining
    a missing track the face looks like if the track is new. Its quality is judged on the detector's whole box
    (`detected`), which says how much of the face is out of the frame; the face's own box stops at the edge."""
    mean = track.mean_embedding()
    if mean is not None and len(track.samples) >= 2 and 1.0 - float(mean @ vector) > tracker.other_person:
        track = tracker.split(track, frame.index)
    if len(track.samples) < RELINK_SAMPLES:  # a face come into view lately: one seen before?
        track = _seen_before(track, vector, frame.index, tracker)
    sample = Sample(frame.index, frame.time, face.box, sighting_quality(frame.rgb, detected, face.keypoints), vector,
                    face.keypoints)
    if run.thumbnails and (not track.samples or sample.quality > track.best().quality):
        from keyface.recognition.core.annotate import face_thumbnail
        track.thumbnail = face_thumbnail(frame.rgb, face.box)
    track.keep(sample)
    if run.index is not None:
        run.guesses[track.id] = _vote(track, run)[0]


def _seen_before(track: Track, vector: np.ndarray, index: int, tracker: Tracker) -> Track:
    """The missing track (started before this one) that this track's sightings look like, within the identify
    cut (as alike as an enrolled person and their photo), continued with them; or the track itself."""
    mean = np.mean([s.embedding for s in track.samples] + [vector], axis=0)
    looks = mean / max(float(np.linalg.norm(mean)), 1e-12)
    candidates = [(1.0 - float(t.mean_embedding() @ looks), t) for t in tracker.missing(index)
                  if t.id < track.id and t.last < track.first]
    distance, old = min(candidates, key=lambda c: c[0], default=(np.inf, None))
    return tracker.continue_with(old, track) if distance <= tracker.same_person else track


def _vote(track: Track, run: VideoRun) -> tuple[str | None, float | None, tuple[Match, ...]]:
    """The track's name by its sightings' quality-weighted vote (None: unknown), the distance of their mean
    embedding to the winner (or to the nearest person), and the nearest people to that mean."""
    cut = run.recogniser.identify_threshold
    weights: dict = defaultdict(float)
    votes: dict = defaultdict(int)
    for sample, found in zip(track.samples, run.index.search(np.stack([s.embedding for s in track.samples]), 1)):
        said = found[0].person if found and found[0].distance <= cut else None
        weights[said] += sample.quality
        votes[said] += 1
    name = max(weights, key=weights.get)
    name = name if name is None or votes[name] >= MIN_VOTES else None  # one glimpse names no one
    matches = tuple(run.index.search(track.mean_embedding()[None], max(run.top, 1))[0])
    chosen = [m.distance for m in matches if m.person == name]
    distance = chosen[0] if chosen else (matches[0].distance if matches else None)
    return name, distance, matches


def _answer(track: Track, run: VideoRun) -> TrackResult | None:
    """A closed track's answer; None for one too short to be a face."""
    run.guesses.pop(track.id, None)
    if not track.is_face() or not track.samples:
        return None
    name, distance, matches = _vote(track, run) if run.index is not None else (None, None, ())
    best = track.best()
    return TrackResult(track.id, name, distance, matches, track.first, track.last, track.times[track.first],
                       track.times[track.last], len(track.boxes), best.box, track.mean_embedding(),
                       {i: within(box, *run.frame_size) for i, box in track.boxes.items()},
                       tuple(track.samples), track.thumbnail)


def write_annotated(source, tracks: list[TrackResult], target, sampling) -> int:
    """An annotated copy of every frame of the video between the sampling's start and end (the frames not
    looked at show boxes moved between the sightings either side); the frames written. The file must not
    exist: an annotated copy never replaces anything."""
    from dataclasses import replace
    from keyface.data.video import VideoWriter
    from keyface.recognition.core.annotate import draw_identities, frame_sightings
    written = 0
    with Video(source, replace(sampling, every=1, fps=None)) as video:
        out = VideoWriter(target, video.fps, video.width, video.height)
        try:
            for frame in video.frames():
                out.write(draw_identities(frame.rgb, *frame_sightings(tracks, frame.index)))
                written += 1
        finally:
            out.close()
    return written
