"""Annotated copies of identified photos: boxes, keypoints and names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data.images import load_image, save_image


def draw_identities(rgb: np.ndarray, results: list) -> np.ndarray:
    """Boxes (green known, red unknown), keypoints and a name label per face."""
    out = rgb.copy()
    for r in results:
        x0, y0, x1, y1 = (int(round(v)) for v in r.face.box)
        colour = (40, 180, 40) if r.name else (220, 40, 40)
        thick = max(1, (x1 - x0) // 60)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        for x, y in r.face.keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), thick, (255, 220, 0), -1, cv2.LINE_AA)
        label = r.name or "unknown"
        scale = max(0.4, (x1 - x0) / 200)
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y0 - h - 6)
        cv2.rectangle(out, (x0, top), (x0 + w + 4, top + h + 6), colour, -1)
        cv2.putText(out, label, (x0 + 2, top + h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def annotate_identities(photo, results: list, out_dir: Path) -> Path:
    """Write the annotated copy of photo into out_dir; return its path."""
    return save_image(Path(out_dir) / f"{Path(photo).stem}_identified.jpg", draw_identities(load_image(photo), results))
