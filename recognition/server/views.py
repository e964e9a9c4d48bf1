"""What the API returns besides faces (FaceResult.to_json, as the CLI's JSON): people and thumbnails."""
from __future__ import annotations

import numpy as np

from keyface.data.files import jpeg_bytes


def people_json(people: list[tuple[str, int]]) -> list[dict]:
    """Everyone enrolled and their number of photos."""
    return [{"name": name, "photos": count} for name, count in people]


def thumbnail(rgb: np.ndarray, enrolment, size: int = 96) -> bytes:
    """A square JPEG of the enrolled face with a margin, `size` px a side."""
    import cv2
    x0, y0, x1, y1 = enrolment.box
    side = 1.3 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    src = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx - side / 2, cy + side / 2]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    crop = cv2.warpAffine(rgb, cv2.getAffineTransform(src, dst), (size, size), borderMode=cv2.BORDER_REPLICATE)
    return jpeg_bytes(crop)
