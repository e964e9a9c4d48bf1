"""Faces linked across a video's frames into tracks, and the quality of each sighting.

A track is one face seen frame after frame. Each frame's detections are matched to the tracks' predicted
boxes (last box moved by the track's velocity) by the Hungarian method on box overlap; a detection no track
takes starts a track. A track unseen for MAX_GAP seconds is lost; a new track whose first sighting looks like
a lost one's (a face that was hidden behind another, or out of the frame) continues it, and a lost track
not found again within REID_WINDOW more seconds is closed. Only a few sightings of a track are embedded
(the first, then one every SAMPLE_EVERY seconds, at most MAX_SAMPLES, the worst replaced by a better one), so
a video costs little more than detection; an embedding far from the track's own ones means two people were
confused (faces crossing) and splits the track.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from keyface.detection.detector import box_iou

MATCH_IOU = 0.2  # a detection overlapping a track's predicted box less than this is someone else
SURE_IOU = 0.5  # a detection overlapping its best track less than this is checked by its looks
LOOKS_WEIGHT = 10.0  # where faces cross: an embedding distance of 0.1 (other people: ~0.15+) weighs 1 of overlap
MAX_GAP = 1.0  # seconds a track may go unseen (occluded, missed) before it is lost to box matching
REID_WINDOW = 4.0  # seconds more a lost track waits to be found again by its looks before it is closed
SAMPLE_EVERY = 0.5  # seconds between a track's embedded sightings
MAX_SAMPLES = 10  # embedded sightings kept a track; a better one replaces the worst
MIN_SIGHTINGS = 5  # a track seen in fewer frames (a third of a second at 15 a second) is not reported
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

    def predicted(self, index: int, time: float) -> np.ndarray:
        """Where its box should be in frame `index` (at `time`): its last box, moved as its centre last moved
        (for MAX_GAP at most), its size kept (a half-hidden face's box shrinks; the face does not)."""
        frames = index - self.last
        unseen = time - self.times[self.last]
        if unseen > MAX_GAP:
            frames *= MAX_GAP / unseen
        shift = (self.velocity[:2] + self.velocity[2:]) / 2 * frames
        return np.asarray(self.boxes[self.last], float) + np.concatenate([shift, shift])

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

    def wants_sample(self, time: float) -> bool:
        """Whether a sighting at `time` should be embedded: SAMPLE_EVERY after the last (keep() then drops the
        worst once MAX_SAMPLES are kept)."""
        return time - self.last_sampled >= SAMPLE_EVERY

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


class Tracker:
    """Links each frame's detections to tracks; closes the tracks that stop being seen."""

    def __init__(self, same_person: float, other_person: float, max_gap: float = MAX_GAP,
                 reid_window: float = REID_WINDOW):
        # embedding distances: within same_person a box is taken for a track wherever it is; beyond
        # other_person it is never taken for one, however well placed
        self.same_person, self.other_person = same_person, other_person
        self.max_gap, self.reid_window, self._next = max_gap, reid_window, 1
        self.active: list[Track] = []  # matched by box overlap
        self.lost: list[Track] = []  # unseen for max_gap: found again only by their looks

    def update(self, index: int, time: float, boxes: list, looks=None) -> tuple[list[Track], list[Track]]:
        """Match a frame's boxes to tracks: (the track of each box, in the boxes' order; the tracks closed).
        Where place alone cannot tell faces apart (a box overlapping several tracks, or a lost track's
        reach), `looks(k)` (the k-th box's unit embedding) decides, against the tracks' own embeddings; a lost
        track is taken back only by a box that looks like it (within `same_person`)."""
        from scipy.optimize import linear_sum_assignment
        candidates = self.active + (self.lost if looks is not None else [])
        predicted = np.array([t.predicted(index, time) for t in candidates]).reshape(-1, 4)
        last = np.array([t.boxes[t.last] for t in candidates], float).reshape(-1, 4)
        found = np.asarray(boxes, float).reshape(-1, 4)
        overlap = np.maximum(box_iou(predicted, found), box_iou(last, found))  # moving on, or stopped
        distance = self._distances(candidates, overlap, looks) if looks is not None else np.zeros_like(overlap)
        owner: list[Track | None] = [None] * len(boxes)
        pairs = zip(*linear_sum_assignment(LOOKS_WEIGHT * distance - overlap)) if overlap.size else ()
        for row, col in pairs:
            lost, d = row >= len(self.active), distance[row, col]
            placed = overlap[row, col] >= MATCH_IOU and not lost and d <= self.other_person
            if placed or (looks is not None and d <= self.same_person):
                owner[col] = self._revived(candidates[row]) if lost else candidates[row]
        for k, box in enumerate(boxes):
            owner[k] = owner[k] or self.start()
            owner[k].see(index, time, box)
        for track in self.active:
            track.looked += 1
        for track in owner:
            track.looked_when_seen = track.looked
        return owner, self._close_unseen(time)

    def _distances(self, candidates: list[Track], overlap: np.ndarray, looks) -> np.ndarray:
        """Embedding distances from every candidate track to each box whose place is in doubt: one overlapping
        several candidates, or none well (a face come out from behind another, or back into view), or a
        candidate overlapping several boxes. 1 where a track has no embedding yet; 0 where place decides."""
        close = overlap >= MATCH_IOU
        doubt = ((close.sum(axis=0) >= 2) | (overlap.max(axis=0, initial=0.0) < SURE_IOU)
                 | (close & (close.sum(axis=1) >= 2)[:, None]).any(axis=0))
        distance = np.zeros_like(overlap)
        means = [t.mean_embedding() for t in candidates]
        for col in np.flatnonzero(doubt):
            vector = looks(int(col))
            distance[:, col] = [1.0 - float(m @ vector) if m is not None else 1.0 for m in means]
        return distance

    def _revived(self, track: Track) -> Track:
        """A lost track found again: active from now."""
        self.lost = [t for t in self.lost if t is not track]
        self.active.append(track)
        track.velocity = np.zeros(4)  # it moved unseen: no telling how
        return track

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
        """Lose the tracks unseen for longer than max_gap; close the lost ones unseen for reid_window more."""
        lost = [t for t in self.active if time - t.times[t.last] > self.max_gap]
        self.active = [t for t in self.active if t not in lost]
        self.lost += lost
        closed = [t for t in self.lost if time - t.times[t.last] > self.max_gap + self.reid_window]
        self.lost = [t for t in self.lost if t not in closed]
        return closed

    def missing(self, index: int) -> list[Track]:
        """The tracks with samples not seen in frame `index`: lost ones, and active ones missed there."""
        return [t for t in self.lost + self.active if t.samples and t.last < index]

    def continue_with(self, old: Track, new: Track) -> Track:
        """`new` (started after `old` was last seen) is `old` seen again: its sightings and samples join `old`,
        which is active again, and `new` is gone."""
        old.boxes.update(new.boxes)
        old.times.update(new.times)
        old.velocity, old.last_sampled = new.velocity.copy(), max(old.last_sampled, new.last_sampled)
        old.looked += new.looked
        old.looked_when_seen = old.looked
        for sample in new.samples:
            old.keep(sample)
        self.active = [t for t in self.active if t is not new and t is not old] + [old]
        self.lost = [t for t in self.lost if t is not old]
        return old

    def close_all(self) -> list[Track]:
        """Close every track (the video ended, or was stopped), in the order they are numbered."""
        closed, self.active, self.lost = sorted(self.active + self.lost, key=lambda t: t.id), [], []
        return closed


def sighting_quality(rgb: np.ndarray, box, keypoints: np.ndarray) -> float:
    """How good a sighting is to recognise from (0-1): big enough (up to 100 px), sharp (Laplacian spread of
    the face at 64 px), frontal (the nose tip between the eyes, from the 68 keypoints) and whole (the share of
    its box inside the frame, squared: a face half out of the picture is half a face)."""
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
    whole = patch.shape[0] * patch.shape[1] / max(1, (x1 - x0) * (y1 - y0))
    return float(max(0.01, size * sharp / (sharp + 100.0) * frontal * whole ** 2))
