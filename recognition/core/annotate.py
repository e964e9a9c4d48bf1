"""Annotated copies of identified photos: boxes, keypoints and names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keyface.data.files import create_private, free_name, jpeg_bytes, private_dir
from keyface.data.images import load_image


def draw_identities(rgb: np.ndarray, results: list) -> np.ndarray:
    """Boxes (green known, red unknown), keypoints and a label "N name" per face, faces numbered left to
    right as the command's output numbers them; labels stay inside the image and never overlap."""
    from PIL import Image, ImageDraw
    out = rgb.copy()
    order = sorted(range(len(results)), key=lambda i: float(results[i].face.box[0]))
    for r in results:
        x0, y0, x1, y1 = (int(round(v)) for v in r.face.box)
        thick = max(1, (x1 - x0) // 60)
        cv2.rectangle(out, (x0, y0), (x1, y1), _colour(r), thick)
        for x, y in r.face.keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), thick, (255, 220, 0), -1, cv2.LINE_AA)
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    placed: list[tuple[int, int, int, int]] = []
    for number, i in enumerate(order, start=1):
        r = results[i]
        label = f"{number} {r.name or 'unknown'}"
        font, (w, h) = _fitting_font(draw, label, r.face.box, image.size)
        x, y = _place(r.face.box, w, h, image.size, placed)
        placed.append((x, y, x + w, y + h))
        left, top, _, _ = draw.textbbox((0, 0), label, font=font)
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=_colour(r))
        draw.text((x + 2 - left, y + 3 - top), label, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _colour(result) -> tuple[int, int, int]:
    return (40, 180, 40) if result.name else (220, 40, 40)


def _fitting_font(draw, label: str, box, size: tuple[int, int]):
    """The font for a label scaled to its face, smaller if needed to fit the image's width; and the
    label's (width, height) with its padding."""
    px = max(11, int((box[2] - box[0]) // 8))
    while True:
        font = _font(px)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        w, h = right - left + 4, bottom - top + 6
        if w <= size[0] or px <= 6:
            return font, (min(w, size[0]), min(h, size[1]))
        px -= 1


def _place(box, w: int, h: int, size: tuple[int, int], placed: list) -> tuple[int, int]:
    """Top-left corner for a w x h label: above the box, else below it, else inside its top, moved down
    past any label already there; always inside the image."""
    width, height = size
    x = int(min(max(0, box[0]), width - w))
    candidates = [int(box[1]) - h, int(box[3]), int(box[1])]
    for y in candidates + list(range(0, height - h + 1, max(1, h // 2))):
        y = min(max(0, y), height - h)
        if not any(_overlap((x, y, x + w, y + h), other) for other in placed):
            return x, y
    return x, min(max(0, candidates[0]), height - h)  # a photo too crowded for every label: overlap the least bad


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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
