"""Annotated copies of identified photos: boxes, keypoints and names, readable in crowds of small faces."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from keyface.data.files import create_private, free_name, jpeg_bytes, private_dir
from keyface.data.images import load_image
from keyface.detection.detector import left_to_right

PAD = 3           # pixels of label background around the text
FEW_POINTS = 40   # faces narrower than this get 5 keypoints, not 68: 68 dots on 30 pixels are one blob
REACH = 4         # rows of labels searched above and below a face before a name gives way to its number
CORE = 0.2        # the part of a face box's width and height at each side that other faces' labels may cover
WIDE = 20         # label heights searched around a face for its number before labels may overlap


class Label(NamedTuple):
    """One placed label: its rectangle (x0, y0, x1, y1; x1 and y1 exclusive), its text and font size."""
    rect: tuple[int, int, int, int]
    text: str
    px: int


def min_label_px(image_size: tuple[int, int]) -> int:
    """The smallest font, in pixels, for a label on an image of (width, height): 11, or 1/120 of its shorter side."""
    return max(11, min(image_size) // 120)


def label_px(box, image_size: tuple[int, int]) -> int:
    """A label's font size: an eighth of its face's width, no smaller than the floor, no larger than 1/24 of the
    photo's shorter side (a face filling the photo needs no poster-sized name)."""
    floor = min_label_px(image_size)
    return min(max(floor, int((box[2] - box[0]) // 8)), max(floor, min(image_size) // 24))


def draw_identities(rgb: np.ndarray, results: list, numbers: Sequence[int] | None = None) -> np.ndarray:
    """Boxes (green known, red unknown, blue for a face not identified), keypoints and a label "N name" per
    face ("N" alone before identification), faces numbered left to right as the command's output numbers
    them (or by `numbers`, one per result: a video's track ids); labels stay inside the image and apart
    (see label_layout). With no faces, the image as it is."""
    from PIL import Image, ImageDraw
    if not results:
        return rgb
    out = rgb.copy()
    size = (out.shape[1], out.shape[0])
    ranked = left_to_right(results)
    given = {id(r): n for r, n in zip(results, numbers)} if numbers is not None else None
    shown = [given[id(r)] for r in ranked] if given is not None else range(1, len(ranked) + 1)
    boxes = [tuple(float(v) for v in r.box) for r in ranked]
    labels = label_layout(boxes, [f"{n} {r.name or 'unknown'}" if _identified(r) else str(n)
                                  for n, r in zip(shown, ranked)], size)
    for r, box, label in zip(ranked, boxes, labels):
        _draw_face(out, r, box, size)
        _draw_leader(out, box, label.rect, _colour(r), _thickness(box, size))
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for r, label in zip(ranked, labels):
        x0, y0, x1, y1 = label.rect
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=_colour(r))
        draw.text((x0 + PAD, y0 + PAD), label.text, fill=(255, 255, 255), font=_font(label.px), anchor="la")
    return np.asarray(image)


def label_layout(boxes: Sequence, labels: Sequence[str], image_size: tuple[int, int]) -> list[Label]:
    """Place one label per face box, in order: each inside the image and clear of the others, preferring spots
    next to its box and off every face; a label "N name" with no room near its face gives way to its number N
    (a smaller label), searched for further out; only when nothing is clear does it overlap, as little as it can."""
    faces = np.array([[b[0], b[1], b[2], b[3]] for b in boxes], float).reshape(-1, 4)
    inset = (faces[:, 2:] - faces[:, :2]) * CORE
    faces = np.hstack([faces[:, :2] + inset, faces[:, 2:] - inset])  # a label may cover a box's edge, not a face
    placed = np.zeros((0, 4))
    out: list[Label] = []
    for box, text in zip(boxes, labels):
        px = label_px(box, image_size)
        label = _place_label(box, text, px, image_size, placed, faces)
        out.append(label)
        placed = np.vstack([placed, label.rect])
    return out


def _place_label(box, text: str, px: int, size: tuple[int, int], placed: np.ndarray, faces: np.ndarray) -> Label:
    """The first clear spot in order of preference: the full text off faces, the number off faces, the number
    anywhere near (never a whole name over other faces: it hides them and who it names), the number further
    out, then the least overlapping spot."""
    full = _fit(text, px, size[0])
    number = _fit(text.split(" ", 1)[0], px, size[0])
    both = np.vstack([placed, faces])
    for (shown, w, h), obstacles, wide in ((full, both, False), (number, both, False), (number, placed, False),
                                          (number, placed, True)):
        spots = _candidates(box, w, h, size, wide)
        free = ~_hits(spots, w, h, obstacles).any(axis=1) if len(obstacles) else np.ones(len(spots), bool)
        if free.any():
            x, y = spots[int(np.argmax(free))]
            return Label((int(x), int(y), int(x) + w, int(y) + h), shown, px)
    shown, w, h = number
    spots = _candidates(box, w, h, size, False)
    x, y = spots[int(np.argmin(_overlap_area(spots, w, h, placed)))]  # a photo too crowded for any clear spot
    return Label((int(x), int(y), int(x) + w, int(y) + h), shown, px)


def _candidates(box, w: int, h: int, size: tuple[int, int], wide: bool) -> np.ndarray:
    """Top-left corners for a w x h label, best first, moved inside the image, without repeats: beside the box
    (above, below, left, right), then rows further above and below; or, when wide, a grid around the box by
    distance."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if wide:
        spots = _ring(x0, y0, x1, y1, w, h)
    else:
        xs = [x0, x1 - w, (x0 + x1 - w) / 2]
        spots = [(x, y) for y in (y0 - h, y1) for x in xs]
        spots += [(x, y) for x in (x0 - w, x1) for y in (y0, (y0 + y1 - h) / 2, y1 - h)]
        rows = [y for k in range(1, REACH + 1) for y in (y0 - h - k * h, y1 + k * h)]
        spots += [(x, y) for y in rows for x in xs + [x0 - w, x1, x0 - w / 2, x1 - w / 2]]
        spots += [(x, y) for k in range(1, REACH + 1) for x in (x0 - w, x1) for y in (y0 - k * h, y1 - h + k * h)]
        spots.append((x0, y0))  # inside the top of its own box: clear of others, but over the face
        spots = np.array(spots)
    spots[:, 0] = np.clip(spots[:, 0], 0, max(0, size[0] - w))
    spots[:, 1] = np.clip(spots[:, 1], 0, max(0, size[1] - h))
    spots = np.round(spots).astype(int)
    _, first = np.unique(spots, axis=0, return_index=True)
    return spots[np.sort(first)]


def _ring(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> np.ndarray:
    """A grid of label corners, half a label apart, up to WIDE label heights around the box, nearest first."""
    reach = WIDE * h
    xs = np.arange(x0 - reach, x1 + reach, max(1, w / 2))
    ys = np.arange(y0 - reach, y1 + reach, max(1, h / 2))
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    centre = grid + (w / 2, h / 2)
    dx = np.maximum(0, np.maximum(x0 - centre[:, 0], centre[:, 0] - x1))
    dy = np.maximum(0, np.maximum(y0 - centre[:, 1], centre[:, 1] - y1))
    return grid[np.argsort(dx * dx + dy * dy, kind="stable")]


def _hits(spots: np.ndarray, w: int, h: int, rects: np.ndarray) -> np.ndarray:
    """Which (spot, rect) pairs overlap: a boolean matrix, len(spots) x len(rects)."""
    x, y = spots[:, :1], spots[:, 1:]
    return (x < rects[:, 2]) & (rects[:, 0] < x + w) & (y < rects[:, 3]) & (rects[:, 1] < y + h)


def _overlap_area(spots: np.ndarray, w: int, h: int, rects: np.ndarray) -> np.ndarray:
    """Each spot's total area of overlap with the rects."""
    if not len(rects):
        return np.zeros(len(spots))
    x, y = spots[:, :1], spots[:, 1:]
    dx = np.clip(np.minimum(x + w, rects[:, 2]) - np.maximum(x, rects[:, 0]), 0, None)
    dy = np.clip(np.minimum(y + h, rects[:, 3]) - np.maximum(y, rects[:, 1]), 0, None)
    return (dx * dy).sum(axis=1)


def _fit(text: str, px: int, width: int) -> tuple[str, int, int]:
    """The text as shown (cut short with an ellipsis if wider than the image) and its label's width and height."""
    font = _font(px)
    ascent, descent = font.getmetrics()
    h = ascent + descent + 2 * PAD
    shown = text
    while len(shown) > 1 and font.getlength(shown) + 2 * PAD > width:
        shown = shown[:-2] + "…" if len(shown) > 2 else shown[:1]
    return shown, min(width, int(np.ceil(font.getlength(shown))) + 2 * PAD), h


def _draw_face(out: np.ndarray, result, box, size: tuple[int, int]) -> None:
    """The face's box and its keypoints: all of them on a face big enough to show them apart, else five."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    thick = _thickness(box, size)
    cv2.rectangle(out, (x0, y0), (x1, y1), _colour(result), thick)
    points = np.asarray(result.keypoints, float).reshape(-1, 2)
    if x1 - x0 < FEW_POINTS:
        points = _five(points)
    for x, y in points:
        cv2.circle(out, (int(round(x)), int(round(y))), max(1, thick // 2 + (x1 - x0 >= FEW_POINTS)),
                   (255, 220, 0), -1, cv2.LINE_AA)


def _five(points: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners of a 68-point face; nothing for other schemes."""
    if len(points) != 68:
        return points[:0]
    return np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def _draw_leader(out: np.ndarray, box, rect, colour, thick: int) -> None:
    """A thin line from a label set apart from its box to the box, so that the two read as one."""
    x0, y0, x1, y1 = box
    lx = min(max((x0 + x1) / 2, rect[0]), rect[2] - 1)  # the label's point nearest the box's centre
    ly = min(max((y0 + y1) / 2, rect[1]), rect[3] - 1)
    bx, by = min(max(lx, x0), x1), min(max(ly, y0), y1)  # and the box's point nearest that
    if abs(lx - bx) + abs(ly - by) > 2 + thick:
        cv2.line(out, (int(round(lx)), int(round(ly))), (int(round(bx)), int(round(by))), colour,
                 max(1, (thick + 1) // 2), cv2.LINE_AA)


def _thickness(box, size: tuple[int, int]) -> int:
    """Box lines: thicker for bigger faces and for bigger photos (a one-pixel line vanishes when a 4000-pixel
    photo is shown on a screen), but never a twelfth of the face."""
    w = int(box[2] - box[0])
    return max(1, w // 60, min(min(size) // 1000, w // 12))


def _identified(result) -> bool:
    """Whether a face has been named or called unknown (a Face before identify has no matches)."""
    return getattr(result, "matches", ()) is not None


def _colour(result) -> tuple[int, int, int]:
    if not _identified(result):
        return (40, 110, 220)
    return (40, 180, 40) if result.name else (220, 40, 40)


@lru_cache(maxsize=64)
def _font(size: int):
    """DejaVu Sans (shipped with matplotlib, a keyface dependency): accented, Greek and Cyrillic names."""
    from PIL import ImageFont
    try:
        import matplotlib
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def annotate_identities(photo, results: list, out_dir: Path) -> Path:
    """Write the annotated copy of photo into out_dir under a name not yet taken (owner-only); return it."""
    target = free_name(private_dir(out_dir) / f"{Path(photo).stem}_identified.jpg")
    return create_private(target, jpeg_bytes(draw_identities(load_image(photo), results)))


def face_thumbnail(rgb: np.ndarray, box, size: int = 96) -> bytes:
    """A square JPEG of a face with a margin, `size` px a side (the gallery keeps one a person, for the page)."""
    x0, y0, x1, y1 = box
    side = 1.3 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    src = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx - side / 2, cy + side / 2]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    crop = cv2.warpAffine(rgb, cv2.getAffineTransform(src, dst), (size, size), borderMode=cv2.BORDER_REPLICATE)
    return jpeg_bytes(crop)


class Sighting(NamedTuple):
    """What a video frame's annotation draws of a track: its box and name (no keypoints)."""
    box: tuple[float, float, float, float]
    name: str | None
    keypoints: np.ndarray = np.zeros((0, 2))


MAX_BETWEEN = 10  # frames between two sightings a box is drawn across; a longer gap is a face hidden or away


def track_box(boxes: dict, index: int) -> tuple[float, float, float, float] | None:
    """A track's box in frame `index`: as seen there, or between the sightings either side (linearly, when
    they are at most MAX_BETWEEN frames apart), or None."""
    if index in boxes:
        return boxes[index]
    seen = sorted(boxes)
    if not seen or not seen[0] < index < seen[-1]:
        return None
    after = next(i for i in seen if i > index)
    before = max(i for i in seen if i < index)
    if after - before > MAX_BETWEEN:
        return None
    k = (index - before) / (after - before)
    return tuple(a + (b - a) * k for a, b in zip(boxes[before], boxes[after]))


def frame_sightings(tracks: list, index: int) -> tuple[list[Sighting], list[int]]:
    """The tracks in frame `index` as drawable sightings, and their ids."""
    drawn, ids = [], []
    for track in tracks:
        if track.first_frame <= index <= track.last_frame and (box := track_box(track.boxes, index)) is not None:
            drawn.append(Sighting(box, track.name))
            ids.append(track.id)
    return drawn, ids
