"""Synthetic video clips with every face's truth in every frame: real faces (LFW photos) moving over a
procedural background, entering, leaving, crossing and changing size, written by OpenCV (MPEG-4 Part 2,
'mp4v'; the `opencv-python` wheel encodes no H.264) and read back like any video."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from keyface.data.crowd import Source, background, blend, crop_around, feather_mask
from keyface.data.video import VideoWriter

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Actor:
    """One face in a clip: who (from which photo), when it is on screen (seconds), and how it moves: its
    centre and width (px) when it enters and when it leaves, in a straight line."""
    source: Source
    enter: float
    leave: float
    start: tuple[float, float, float]  # centre x, centre y, face width
    end: tuple[float, float, float]

    def at(self, time: float) -> tuple[float, float, float] | None:
        """Centre and width at a time, or None off screen."""
        if not self.enter <= time <= self.leave:
            return None
        k = (time - self.enter) / max(self.leave - self.enter, 1e-9)
        return tuple(a + (b - a) * k for a, b in zip(self.start, self.end))


@dataclass(frozen=True)
class ClipSpec:
    """A clip's size, frame rate and length (s), and its actors."""
    width: int
    height: int
    fps: float
    seconds: float
    actors: tuple[Actor, ...]


def plan_clip(sources: Sequence[Source], width: int, height: int, seconds: float, rng: np.random.Generator,
              fps: float = 30.0, faces: int = 4, min_face: float = 80.0, max_face: float = 160.0) -> ClipSpec:
    """A clip of `faces` people (one source each): half cross the frame side to side, the others walk in or out
    somewhere, growing or shrinking (as walking towards the camera) between min_face and max_face px; those
    who stay start apart from each other (people do not stand inside one another; crossers pass in front)."""
    picks = rng.choice(len(sources), size=min(faces, len(sources)), replace=False)
    actors, stayers = [], []
    for k, pick in enumerate(picks):
        size = rng.uniform(min_face, max_face, 2)
        lane = height * (0.25 + 0.5 * rng.random())
        enter = rng.uniform(0, seconds * 0.3)
        leave = min(seconds, enter + rng.uniform(seconds * 0.5, seconds))
        if k % 2 == 0:  # crossing: from one side to the other, lanes may meet
            x0, x1 = (-0.1 * width, 1.1 * width) if rng.random() < 0.5 else (1.1 * width, -0.1 * width)
            actors.append(Actor(sources[pick], enter, leave, (x0, lane, size[0]), (x1, lane, size[1])))
        else:
            x, y = _apart(stayers, width, lane, max_face, rng)
            stayers.append((x, y))
            drift = rng.uniform(-0.4, 0.4, 2) * max_face  # apart they stay: each moves under 0.6 max_face
            actors.append(Actor(sources[pick], enter, leave, (x, y, size[0]), (x + drift[0], y + drift[1], size[1])))
    return ClipSpec(width, height, fps, seconds, tuple(actors))


def _apart(taken: list, width: int, lane: float, max_face: float, rng: np.random.Generator) -> tuple[float, float]:
    """A start (x, lane) at least 1.5 max_face from those taken, if one of 50 random tries finds it."""
    x = rng.uniform(0.15, 0.85) * width
    for _ in range(50):
        if all(np.hypot(x - tx, lane - ty) >= 1.5 * max_face for tx, ty in taken):
            break
        x = rng.uniform(0.15, 0.85) * width
    return x, lane


def render_clip(spec: ClipSpec, load: Callable[[Path], np.ndarray], seed: int = 0) -> Iterator[tuple[np.ndarray, list]]:
    """Each frame (RGB) and its truth: [(actor number, person, face box)] of the faces fully or partly in
    view, later actors drawn over earlier ones (a face hidden behind another is still in the truth)."""
    backdrop = background(spec.width, spec.height, np.random.default_rng(seed))
    crops = [crop_around(load(a.source.photo), a.source) for a in spec.actors]
    for n in range(int(round(spec.seconds * spec.fps))):
        frame, truth = backdrop.copy(), []
        for k, (actor, crop) in enumerate(zip(spec.actors, crops)):
            place = actor.at(n / spec.fps)
            if place is not None and (box := _paste(frame, crop, place)) is not None:
                truth.append((k, actor.source.person, box))
        yield frame, truth


def _paste(frame: np.ndarray, crop: tuple[np.ndarray, Box], place: tuple[float, float, float]) -> Box | None:
    """Paste the crop so that its face is centred at place (x, y) and place[2] px wide; the face's box in the
    frame, cut at its edges as every output boxes a face, or None if no part of the face lands in it."""
    image, (fx0, fy0, fx1, fy1) = crop
    scale = place[2] / (fx1 - fx0)
    patch = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    mask = feather_mask(*patch.shape[:2])
    x = int(round(place[0] - (fx0 + fx1) / 2 * scale))
    y = int(round(place[1] - (fy0 + fy1) / 2 * scale))
    h, w = frame.shape[:2]
    left, top, right, bottom = max(0, x), max(0, y), min(w, x + patch.shape[1]), min(h, y + patch.shape[0])
    if right <= left or bottom <= top:
        return None
    blend(frame, patch[top - y:bottom - y, left - x:right - x], mask[top - y:bottom - y, left - x:right - x], left, top)
    x0, y0 = max(x + fx0 * scale, 0.0), max(y + fy0 * scale, 0.0)
    x1, y1 = min(x + fx1 * scale, float(w)), min(y + fy1 * scale, float(h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def write_clip(spec: ClipSpec, path: Path, load: Callable[[Path], np.ndarray], seed: int = 0) -> list[list]:
    """Render the clip into an MPEG-4 file; the truth of every frame, also written beside it as JSON."""
    writer, truths = VideoWriter(path, spec.fps, spec.width, spec.height), []
    try:
        for frame, truth in render_clip(spec, load, seed):
            writer.write(frame)
            truths.append([(k, person, [round(v, 1) for v in box]) for k, person, box in truth])
    finally:
        writer.close()
    Path(f"{path}.truth.json").write_text(json.dumps({"spec": _spec_json(spec), "frames": truths}))
    return truths


def _spec_json(spec: ClipSpec) -> dict:
    out = asdict(spec)
    for actor in out["actors"]:
        actor["source"] = {"person": actor["source"]["person"], "photo": str(actor["source"]["photo"])}
    return out
