"""What the API returns: faces, people and thumbnails, in the same shapes as the CLI's JSON."""
from __future__ import annotations

import numpy as np

from keyface.data.files import jpeg_bytes


def face_json(number: int, result) -> dict:
    """One identified face: its number (left to right), box, keypoints, name and nearest people."""
    face = result.face
    return {"face": number, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 4),
            "keypoints": np.round(np.asarray(face.keypoints, float), 1).tolist(), "name": result.name or "unknown",
            "matches": [{"person": m.person, "distance": round(float(m.distance), 4)} for m in result.matches]}


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
