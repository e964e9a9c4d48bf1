"""Annotated copies of identified photos: boxes, keypoints and names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keyface.data.files import create_private, free_name, jpeg_bytes, private_dir
from keyface.data.images import load_image


def draw_identities(rgb: np.ndarray, results: list) -> np.ndarray:
    """Boxes (green known, red unknown), keypoints and a name label per face (any script: a Unicode font)."""
    from PIL import Image, ImageDraw
    out = rgb.copy()
    labels = []
    for r in results:
        x0, y0, x1, y1 = (int(round(v)) for v in r.face.box)
        colour = (40, 180, 40) if r.name else (220, 40, 40)
        thick = max(1, (x1 - x0) // 60)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        for x, y in r.face.keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), thick, (255, 220, 0), -1, cv2.LINE_AA)
        labels.append((r.name or "unknown", x0, y0, max(11, (x1 - x0) // 8), colour))
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for label, x0, y0, size, colour in labels:
        font = _font(size)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        y = max(0, y0 - (bottom - top) - 6)
        draw.rectangle((x0, y, x0 + right - left + 4, y + bottom - top + 6), fill=colour)
        draw.text((x0 + 2 - left, y + 3 - top), label, fill=(255, 255, 255), font=font)
    return np.asarray(image)


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
