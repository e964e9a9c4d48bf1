"""Faces linked across a video's frames into tracks, and the quality of each sighting.

A track is one face seen frame after frame. Each frame's detections are matched to the tracks' predicted
boxes (last box moved by the track's velocity) by the Hungarian method on box overlap; a detection no track
takes starts a track; a track unseen for `max_gap` seconds is closed. Only a few sightings of a track are
embedded (the first, then one every `sample_every` seconds, at most `max_samples`, the worst replaced by a
better one), so a video costs little more than detection; an embedding far from the track's own ones
means two people were confused (faces crossing) and splits the track.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MATCH_IOU = 0.2  # a detection overlapping a track's predicted box less than this is someone else
MAX_GAP = 1.0  # seconds a track may go unseen (occluded, missed) before it is closed
SAMPLE_EVERY = 0.5  # seconds between a track's embedded sightings
MAX_SAMPLES = 10  # embedded sightings kept a track; a better one replaces the worst
MIN_SIGHTINGS = 3  # a track seen in fewer frames is a detector's false alarm, not reported
MIN_SEEN_SHARE = 0.5  # nor is one seen in under half the frames looked at from its first sighting to its last


@dataclass
class Sample:
    """One embedded sighting: frame index, time, box, quality (0-1), unit embedding and 68 keypoints."""
    index: int
    time: float
    box: tuple[float, float, float, float]
    quality: float
    embedding: np.ndarray
    keypoints: np.ndarray


@dataclass
class Track:
    """One face followed through the video: where it was in each frame it was seen, and its samples."""
    id: int
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)  # frame index -> box
    times: dict[int, float] = field(default_factory=dict)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame
    samples: list[Sample] = field(default_factory=list)
    last_sampled: float = -1e9
    thumbnail: bytes | None = None
    looked: int = 0  # frames looked at since it started
    looked_when_seen: int = 0  # ... up to its last sighting

    @property
    def first(self) -> int:
        """The first frame it was seen in."""
        return next(iter(self.boxes))

    @property
    def last(self) -> int:
        """The last frame it was seen in."""
        return next(reversed(self.boxes))

    def predicted(self, index: int) -> np.ndarray:
        """Where its box should be in frame `index`, moving as it last moved."""
        return np.asarray(self.boxes[self.last], float) + self.velocity * (index - self.last)

    def see(self, index: int, time: float, box) -> None:
        """Add a sighting; the velocity follows the last two, smoothed."""
        box = tuple(float(v) for v in box)
        if self.boxes:
            step = (np.asarray(box) - np.asarray(self.boxes[self.last])) / max(1, index - self.last)
            self.velocity = 0.5 * self.velocity + 0.5 * step
        self.boxes[index], self.times[index] = box, time

    def is_face(self) -> bool:
        """Whether it was seen often enough to be a face, not a detector's false alarms strung together."""
        return len(self.boxes) >= max(MIN_SIGHTINGS, MIN_SEEN_SHARE * self.looked_when_seen)

    def wants_sample(self, time: float, quality: float) -> bool:
        """Whether a sighting at `time` of this quality should be embedded."""
        if time - self.last_sampled < SAMPLE_EVERY:
            return False
        return len(self.samples) < MAX_SAMPLES or quality > min(s.quality for s in self.samples)

    def keep(self, sample: Sample) -> None:
        """Keep an embedded sighting, dropping the worst once MAX_SAMPLES are kept."""
        self.last_sampled = sample.time
        self.samples.append(sample)
        if len(self.samples) > MAX_SAMPLES:
            self.samples.remove(min(self.samples, key=lambda s: s.quality))

    def mean_embedding(self) -> np.ndarray | None:
        """Its samples' embeddings averaged, weighted by quality, unit length; None before any."""
        if not self.samples:
            return None
        mean = np.average([s.embedding for s in self.samples], axis=0, weights=[s.quality for s in self.samples])
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def best(self) -> Sample | None:
        """Its best embedded sighting."""
        return max(self.samples, key=lambda s: s.quality) if self.samples else None


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Overlap (intersection over union) of every box in a (N, 4) with every box in b (M, 4): (N, M)."""
    a, b = np.asarray(boxes_a, float).reshape(-1, 4)[:, None], np.asarray(boxes_b, float).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    inter = w * h
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class Tracker:
    """Links each frame's detections to tracks; closes the tracks that stop being seen."""

    def __init__(self, max_gap: float = MAX_GAP):
        self.max_gap, self.active, self._next = max_gap, [], 1

    def update(self, index: int, time: float, boxes: list) -> tuple[list[Track], list[Track]]:
        """Match a frame's boxes to tracks: (the track of each box, in the boxes' order; the tracks closed)."""
        from scipy.optimize import linear_sum_assignment
        predicted = np.array([t.predicted(index) for t in self.active]).reshape(-1, 4)
        overlap = box_iou(predicted, np.asarray(boxes, float).reshape(-1, 4))
        owner: list[Track | None] = [None] * len(boxes)
        pairs = zip(*linear_sum_assignment(-overlap)) if overlap.size else ()
        for row, col in pairs:
            if overlap[row, col] >= MATCH_IOU:
                owner[col] = self.active[row]
        for k, box in enumerate(boxes):
            owner[k] = owner[k] or self.start()
            owner[k].see(index, time, box)
        for track in self.active:
            track.looked += 1
        for track in owner:
            track.looked_when_seen = track.looked
        return owner, self._close_unseen(time)

    def start(self) -> Track:
        """A new track, active from now."""
        track = Track(self._next)
        self._next += 1
        self.active.append(track)
        return track

    def split(self, track: Track, index: int) -> Track:
        """End `track` before frame `index` (its sighting there is someone else's) and start a new track with it."""
        box, time = track.boxes.pop(index), track.times.pop(index)
        fresh = self.start()
        fresh.see(index, time, box)
        return fresh

    def _close_unseen(self, time: float) -> list[Track]:
        """Close the tracks unseen for longer than max_gap."""
        closed = [t for t in self.active if time - t.times[t.last] > self.max_gap]
        self.active = [t for t in self.active if t not in closed]
        return closed

    def close_all(self) -> list[Track]:
        """Close every track (the video ended, or was stopped)."""
        closed, self.active = self.active, []
        return closed


def sighting_quality(rgb: np.ndarray, box, keypoints: np.ndarray) -> float:
    """How good a sighting is to recognise from (0-1): big enough (up to 100 px), sharp (Laplacian spread of
    the face at 64 px) and frontal (the nose tip between the eyes, from the 68 keypoints)."""
    import cv2
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    h, w = rgb.shape[:2]
    patch = rgb[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if patch.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(patch, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    sharp = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    points = np.asarray(keypoints, float).reshape(-1, 2)
    eyes = (points[36:42].mean(axis=0), points[42:48].mean(axis=0)) if len(points) == 68 else None
    frontal = 1.0
    if eyes is not None:
        span = max(float(np.linalg.norm(eyes[1] - eyes[0])), 1e-6)
        frontal = max(0.0, 1.0 - 2.0 * abs(points[30, 0] - (eyes[0][0] + eyes[1][0]) / 2) / span)
    size = min(1.0, (x1 - x0) / 100.0)
    return float(max(0.01, size * sharp / (sharp + 100.0) * frontal))
