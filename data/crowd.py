"""Synthetic group photos and video frames: real faces pasted onto procedural backgrounds, truth known."""
from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels, edges at integer coordinates

CROP_SCALE = 1.6  # the pasted crop is the face box grown this much about its centre: hair, chin and a margin
FEATHER = 0.1  # soft-edge width as a share of the crop's shorter side; stays inside the 0.3-width margin
MAX_ROTATION = 25.0  # degrees either way
BLUR_SIGMA = (0.5, 1.5)  # Gaussian sigma in pixels at the pasted size
JPEG_QUALITY = (40, 85)  # inclusive
PLACE_TRIES = 200  # random spots tried per face before it is left out
NOISE_SIDE = 256  # the background's longer side before upscaling: detail finer than this comes from shapes
MATCH_CENTRE = 0.35  # face_match: centre offset allowed in each axis, as a share of the truth width
MATCH_WIDTH = (0.5, 2.0)  # face_match: found width allowed, as multiples of the truth width


@dataclass(frozen=True)
class Source:
    """A face to paste: who, which photo, and the face's box (x0, y0, x1, y1) in that photo's pixels."""
    person: str
    photo: Path
    box: Box


@dataclass(frozen=True)
class PlacedFace:
    """A pasted face on a canvas: who, from which photo, its box in canvas pixels, and how it was pasted."""
    person: str
    photo: Path
    box: Box  # same convention as Source.box, mapped into the canvas
    rotation: float  # degrees applied to the crop, counter-clockwise as seen on screen
    blurred: bool

    @property
    def size(self) -> float:
        """The box width in canvas pixels: what "face size" means in reports."""
        return self.box[2] - self.box[0]


@dataclass
class Canvas:
    """One synthetic photo and its truth."""
    name: str
    image: np.ndarray  # RGB uint8 (H, W, 3), after any JPEG round trip
    faces: list[PlacedFace]
    jpeg_quality: int | None


@dataclass(frozen=True)
class CanvasSpec:
    """How to make one kind of canvas."""
    width: int
    height: int
    faces: tuple[int, int]  # inclusive range of how many faces to paste
    face_px: tuple[float, float]  # range of pasted face sizes (box width, px), drawn log-uniformly
    rotate_share: float = 0.25  # share of faces rotated by a random angle in +-MAX_ROTATION degrees
    blur_share: float = 0.2  # share of faces blurred (Gaussian, BLUR_SIGMA px at the pasted size)
    jpeg_share: float = 0.5  # share of canvases re-encoded as JPEG at a quality in JPEG_QUALITY

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"canvas size {self.width}x{self.height} is empty")
        if not 0 <= self.faces[0] <= self.faces[1]:
            raise ValueError(f"face count range {self.faces} is not 0 <= low <= high")
        if not 0 < self.face_px[0] <= self.face_px[1]:
            raise ValueError(f"face size range {self.face_px} is not 0 < low <= high")
        if not all(0.0 <= share <= 1.0 for share in (self.rotate_share, self.blur_share, self.jpeg_share)):
            raise ValueError("rotate_share, blur_share and jpeg_share must each lie in [0, 1]")


@dataclass(frozen=True)
class _Paste:
    """How one face will be pasted, drawn before its photo is read."""
    size: float
    rotation: float
    blur_sigma: float  # 0 when not blurred


def group_specs() -> list[CanvasSpec]:
    """Group photos: four background sizes, more faces on bigger ones, faces 20-150 px wide."""
    sizes = [((1600, 1200), (8, 20)), ((2400, 1600), (12, 30)), ((3000, 2000), (16, 40)), ((4000, 3000), (20, 60))]
    return [CanvasSpec(w, h, faces, (20.0, 150.0)) for (w, h), faces in sizes]


def video_specs() -> list[CanvasSpec]:
    """Video frames: 640x480, 1280x720, 1920x1080 with 1-6 faces of 24-200 px (more big faces than groups)."""
    return [CanvasSpec(w, h, (1, 6), (24.0, 200.0)) for w, h in ((640, 480), (1280, 720), (1920, 1080))]


def make_canvases(kind: str, count: int, sources: Sequence[Source], seed: int,
                  load: Callable[[Path], np.ndarray]) -> Iterator[Canvas]:
    """Yield count canvases of kind "group" or "video", cycling through its specs, one at a time."""
    specs = {"group": group_specs, "video": video_specs}.get(kind)
    if specs is None:
        raise ValueError(f"unknown canvas kind {kind!r} (expected 'group' or 'video')")
    chosen = specs()
    for index in range(count):
        spec = chosen[index % len(chosen)]
        name = f"group-{index:03d}" if kind == "group" else f"video-{spec.width}x{spec.height}-{index:03d}"
        # canvas index's own child seed (as SeedSequence.spawn makes them): the same whatever count is asked for
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        yield make_canvas(name, spec, sources, rng, load)


def make_canvas(name: str, spec: CanvasSpec, sources: Sequence[Source], rng: np.random.Generator,
                load: Callable[[Path], np.ndarray]) -> Canvas:
    """Paste faces from sources onto a fresh background as spec says; faces that do not fit are left out."""
    image = background(spec.width, spec.height, rng)
    wanted = int(rng.integers(spec.faces[0], spec.faces[1] + 1))
    chosen = _pick_sources(sources, wanted, rng)
    # biggest first: they are the hardest to fit once the canvas fills up
    pastes = sorted((_draw_paste(spec, rng) for _ in chosen), key=lambda paste: -paste.size)
    occupied: list[tuple[int, int, int, int]] = []
    faces = []
    for source, paste in zip(chosen, pastes):
        face = _paste_face(image, source, paste, occupied, rng, load)
        if face is not None:
            faces.append(face)
    if len(faces) < wanted:
        log.debug("%s: pasted %d of %d faces (no room or too few sources)", name, len(faces), wanted)
    quality = None
    if rng.random() < spec.jpeg_share:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        image = _jpeg_round_trip(image, quality)
    return Canvas(name, image, faces, quality)


def _pick_sources(sources: Sequence[Source], count: int, rng: np.random.Generator) -> list[Source]:
    """Up to count distinct sources in random order, one per person first, repeats of a person only if short."""
    first, rest, seen = [], [], set()
    for index in rng.permutation(len(sources)):
        source = sources[index]
        (rest if source.person in seen else first).append(source)
        seen.add(source.person)
        if len(first) >= count:
            break
    return (first + rest)[:count]


def _draw_paste(spec: CanvasSpec, rng: np.random.Generator) -> _Paste:
    """Draw one face's size (log-uniform), rotation and blur from spec's ranges and shares."""
    size = float(np.exp(rng.uniform(np.log(spec.face_px[0]), np.log(spec.face_px[1]))))
    rotation = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)) if rng.random() < spec.rotate_share else 0.0
    blur_sigma = float(rng.uniform(*BLUR_SIGMA)) if rng.random() < spec.blur_share else 0.0
    return _Paste(size, rotation, blur_sigma)


def _paste_face(image: np.ndarray, source: Source, paste: _Paste, occupied: list[tuple[int, int, int, int]],
                rng: np.random.Generator, load: Callable[[Path], np.ndarray]) -> PlacedFace | None:
    """Blend one face into a free spot of image and record the spot; None when no free spot was found."""
    photo = np.asarray(load(source.photo))
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"{source.photo}: load gave {photo.dtype} {photo.shape}, not RGB uint8 (H, W, 3)")
    patch, mask, face = _face_patch(photo, source, paste)
    # what must lie inside the canvas and clear of other faces: the patch, and the face box should it stick out
    lo_x, lo_y = math.floor(min(0.0, face[0])), math.floor(min(0.0, face[1]))
    hi_x, hi_y = math.ceil(max(patch.shape[1], face[2])), math.ceil(max(patch.shape[0], face[3]))
    spot = _find_spot(occupied, hi_x - lo_x, hi_y - lo_y, image.shape[1], image.shape[0], rng)
    if spot is None:
        return None
    left, top = spot
    x, y = left - lo_x, top - lo_y
    blend(image, patch, mask, x, y)
    occupied.append((left, top, left + hi_x - lo_x, top + hi_y - lo_y))
    box = (float(face[0] + x), float(face[1] + y), float(face[2] + x), float(face[3] + y))
    return PlacedFace(source.person, source.photo, box, paste.rotation, paste.blur_sigma > 0)


def _face_patch(photo: np.ndarray, source: Source, paste: _Paste) -> tuple[np.ndarray, np.ndarray, Box]:
    """The scaled, blurred and rotated crop around the face, its soft mask, and the face box in the patch."""
    crop, (x0, y0, x1, y1) = crop_around(photo, source)
    scale = paste.size / (x1 - x0)
    # INTER_AREA averages when shrinking (no aliasing); cubic when enlarging. fx/fy keep the scale exact.
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=method)
    if paste.blur_sigma > 0:
        patch = cv2.GaussianBlur(patch, (0, 0), paste.blur_sigma)
    mask = feather_mask(*patch.shape[:2])
    face = (x0 * scale, y0 * scale, x1 * scale, y1 * scale)
    if paste.rotation:
        patch, mask, face = _rotate(patch, mask, face, paste.rotation)
    return patch, mask, face


def crop_around(photo: np.ndarray, source: Source) -> tuple[np.ndarray, Box]:
    """The face box grown CROP_SCALE times about its centre, clipped to the photo; and the box in the crop."""
    x0, y0, x1, y1 = source.box
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{source.photo}: face box {source.box} is empty")
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = (x1 - x0) * CROP_SCALE / 2, (y1 - y0) * CROP_SCALE / 2
    height, width = photo.shape[:2]
    left, top = max(0, math.floor(centre_x - half_w)), max(0, math.floor(centre_y - half_h))
    right, bottom = min(width, math.ceil(centre_x + half_w)), min(height, math.ceil(centre_y + half_h))
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"{source.photo}: face box {source.box} lies outside the {width}x{height} photo")
    return photo[top:bottom, left:right], (x0 - left, y0 - top, x1 - left, y1 - top)


def feather_mask(height: int, width: int) -> np.ndarray:
    """Opacity 1 inside, easing to 0 at the edges (smoothstep), so no hard rectangle edge shows."""
    ramp = max(1.0, FEATHER * min(height, width))
    rows, cols = np.arange(height) + 0.5, np.arange(width) + 0.5
    to_edge = np.minimum.outer(np.minimum(rows, height - rows), np.minimum(cols, width - cols))
    level = np.clip(to_edge / ramp, 0.0, 1.0)
    return (level * level * (3 - 2 * level)).astype(np.float32)


def _rotate(patch: np.ndarray, mask: np.ndarray, face: Box, degrees: float) -> tuple[np.ndarray, np.ndarray, Box]:
    """Rotate patch and mask about the face centre into a patch big enough for all of it; the box moves along."""
    height, width = patch.shape[:2]
    centre = np.array([(face[0] + face[2]) / 2, (face[1] + face[3]) / 2])
    # OpenCV puts pixel centres at integers, our boxes put pixel edges there: hence the half pixel
    matrix = cv2.getRotationMatrix2D((centre[0] - 0.5, centre[1] - 0.5), degrees, 1.0)
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    turned = (corners - centre) @ matrix[:, :2].T + centre
    low, high = np.floor(turned.min(axis=0)), np.ceil(turned.max(axis=0))
    matrix[:, 2] -= low
    size = (int(high[0] - low[0]), int(high[1] - low[1]))
    patch = cv2.warpAffine(patch, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    centre_x, centre_y = centre - low
    half_w, half_h = (face[2] - face[0]) / 2, (face[3] - face[1]) / 2
    return patch, mask, (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)


def _find_spot(occupied: list[tuple[int, int, int, int]], width: int, height: int, canvas_width: int,
               canvas_height: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A random top-left corner where a width x height rectangle fits the canvas clear of occupied; or None."""
    if width > canvas_width or height > canvas_height:
        return None
    lefts = rng.integers(0, canvas_width - width + 1, PLACE_TRIES)
    tops = rng.integers(0, canvas_height - height + 1, PLACE_TRIES)
    taken = np.asarray(occupied, np.int64).reshape(-1, 4)
    clash = ((lefts[:, None] < taken[:, 2]) & (lefts[:, None] + width > taken[:, 0])
             & (tops[:, None] < taken[:, 3]) & (tops[:, None] + height > taken[:, 1])).any(axis=1)
    free = np.flatnonzero(~clash)
    return (int(lefts[free[0]]), int(tops[free[0]])) if free.size else None


def blend(image: np.ndarray, patch: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Mix patch into image at (x, y) in place, weighted by mask."""
    height, width = patch.shape[:2]
    region = image[y:y + height, x:x + width]
    alpha = mask[..., None]
    mixed = region.astype(np.float32) * (1 - alpha) + patch.astype(np.float32) * alpha
    region[...] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A face-free backdrop: multi-scale colour noise and a gradient, made small and upscaled, then shapes."""
    shrink = max(1.0, max(width, height) / NOISE_SIDE)
    small_w, small_h = max(2, round(width / shrink)), max(2, round(height / shrink))
    field = _colour_noise(small_w, small_h, rng) + _gradient(small_w, small_h, rng)
    small = np.clip(field + 0.5, 0, 255).astype(np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    _draw_shapes(image, rng)
    return image


def _colour_noise(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise summed over octaves (coarse ones strongest), mixed into random colours about a base colour."""
    noise = np.zeros((height, width, 3), np.float32)
    cells, weight = 2, 1.0
    while cells <= max(width, height) // 2:
        longest = max(width, height)
        grid = rng.random((max(2, cells * height // longest), max(2, cells * width // longest), 3), np.float32)
        noise += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        cells, weight = cells * 2, weight * 0.55
    noise = (noise - noise.mean()) / (noise.std() + 1e-6)
    colours = rng.normal(0.0, 28.0, (3, 3)).astype(np.float32)  # which colour each noise channel pushes toward
    base = rng.uniform(50, 205, 3).astype(np.float32)
    return base + noise @ colours


def _gradient(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A linear colour ramp in a random direction, like uneven light across a room."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs / width - 0.5) * np.cos(angle) + (ys / height - 0.5) * np.sin(angle)
    colour = rng.normal(0.0, 1.0, 3).astype(np.float32)
    colour *= rng.uniform(30, 80) / (np.linalg.norm(colour) + 1e-6)
    return ramp[..., None] * colour


def _draw_shapes(image: np.ndarray, rng: np.random.Generator) -> None:
    """Draw random filled rectangles and ellipses and straight lines in random colours: hard edges to detect."""
    height, width = image.shape[:2]
    reach = min(width, height)
    for _ in range(int(rng.integers(8, 20))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        dx, dy = (int(d) for d in rng.integers(reach // 40 + 1, reach // 4 + 2, 2))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + dx, y + dy), colour, thickness=-1)
        elif kind == 1:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, (x, y), (dx // 2, dy // 2), angle, 0, 360, colour, -1, cv2.LINE_AA)
        else:
            end = (x + int(rng.integers(-2 * dx, 2 * dx + 1)), y + int(rng.integers(-2 * dy, 2 * dy + 1)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, reach // 100 + 3)), cv2.LINE_AA)


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """The image as a JPEG at quality would decode: the artefacts real photos carry."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.array(decoded.convert("RGB"))


def _centre(box: Sequence[float]) -> tuple[float, float]:
    """The centre of an (x0, y0, x1, y1) box."""
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def face_match(truth_box: Sequence[float], found_box: Sequence[float]) -> bool:
    """Whether found_box finds the face of truth_box, whatever box convention the detector draws."""
    truth_width = truth_box[2] - truth_box[0]
    found_width = found_box[2] - found_box[0]
    (truth_x, truth_y), (found_x, found_y) = _centre(truth_box), _centre(found_box)
    reach = MATCH_CENTRE * truth_width
    return (abs(found_x - truth_x) <= reach and abs(found_y - truth_y) <= reach
            and MATCH_WIDTH[0] * truth_width <= found_width <= MATCH_WIDTH[1] * truth_width)


def match_faces(truth: Sequence[Sequence[float]],
                found: Sequence[Sequence[float]]) -> tuple[list[int | None], list[int]]:
    """Pair truth and found boxes one to one, closest centres first; return each truth's match and the false boxes."""
    pairs = []
    for t, truth_box in enumerate(truth):
        for f, found_box in enumerate(found):
            if face_match(truth_box, found_box):
                (tx, ty), (fx, fy) = _centre(truth_box), _centre(found_box)
                pairs.append((math.hypot(fx - tx, fy - ty), t, f))
    matched: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for _, t, f in sorted(pairs):
        if matched[t] is None and f not in used:
            matched[t] = f
            used.add(f)
    return matched, [f for f in range(len(found)) if f not in used]
