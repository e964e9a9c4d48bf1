"""Keypoints for photos on disk: every face found, mapped back to the photo, drawn if asked."""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.files import create_private, free_name, private_dir
from keyface.data.images import load_image
from keyface.detection.detector import within
from keyface.keypoints.predictor import KeypointPredictor

log = logging.getLogger(__name__)

IMAGE_OUT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
             ".webp": "WEBP"}  # --out names one file when it ends in one of these


def iter_predictions(photos: list[str], model: str | None, models: str | None, detector
                     ) -> Iterator[tuple[dict, np.ndarray | None]]:
    """For each photo as soon as it is done: its faces (found by `detector`) left to right, numbered from 1,
    with box, score and keypoints rounded to 0.1 px (or "error"), and its pixels (None when it could not be read)."""
    predictor = KeypointPredictor.load(model, models=models)
    for photo in photos:
        try:
            rgb = load_image(photo)
        except KeyfaceError as exc:
            yield {"photo": str(photo), "error": str(exc), "faces": []}, None
            continue
        yield {"photo": str(photo), "width": rgb.shape[1], "height": rgb.shape[0],
               "faces": _keypoints(rgb, detector, predictor)}, rgb


def iter_video_keypoints(video, model: str | None, models: str | None, detector) -> Iterator[tuple[dict, np.ndarray]]:
    """For each frame a video (data.video.Video) looks at: its faces as for a photo, with the frame's
    number and time, and its pixels."""
    predictor = KeypointPredictor.load(model, models=models)
    for frame in video.frames():
        yield {"video": video.name, "frame": frame.index, "time": round(frame.time, 3),
               "faces": _keypoints(frame.rgb, detector, predictor)}, frame.rgb


def _keypoints(rgb: np.ndarray, detector, predictor) -> list[dict]:
    """Every face in a picture, left to right (numbered from 1): box, score and keypoints to 0.1 px."""
    faces = detector.detect(rgb)  # left to right
    points = predictor.predict(rgb, [f.box for f in faces])
    height, width = rgb.shape[:2]
    return [{"face": i + 1, "box": [round(v, 1) for v in within(f.box, width, height)], "score": round(float(f.score), 4),
             "keypoints": np.round(np.asarray(p, np.float64), 1).tolist()} for i, (f, p) in enumerate(zip(faces, points))]


def annotated_target(out: Path, photo: str, single: bool) -> Path:
    """Where a photo's annotated copy goes: `out` itself (one photo, an image name) or a file in the folder
    `out`; never over anything already there (the input photo, an earlier copy): -2, -3, ... instead."""
    if single:
        private_dir(out.parent if str(out.parent) else Path("."))
        return free_name(out)
    return free_name(private_dir(out) / f"{Path(photo).stem}_keypoints.jpg")


def annotate_photo(result: dict, rgb: np.ndarray, target: Path, filter_name: str | None) -> Path:
    """Draw one photo's faces (points and numbers, or the filter) and write the copy owner-only."""
    path = create_private(target, encoded(drawn(result, rgb, filter_name), target.suffix))
    log.info("wrote %s", path)
    return path


def drawn(result: dict, rgb: np.ndarray, filter_name: str | None = None) -> np.ndarray:
    """A picture's faces drawn on a copy of it: points and numbers, or the filter."""
    taken: list = []  # the number tags already drawn, so that neighbours' tags never overlap
    for face in result["faces"]:
        pts = np.asarray(face["keypoints"], np.float32)
        if filter_name == "sunglasses":
            rgb = draw_sunglasses(rgb, pts)
        else:
            rgb = draw_keypoints(rgb, face["box"], pts, face.get("face"), taken=taken)
    return rgb


def encoded(rgb: np.ndarray, suffix: str) -> bytes:
    """The image encoded in the format its file suffix names (JPEG unless .png, .bmp, .tif, .webp)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buffer, format=IMAGE_OUT.get(suffix.lower(), "JPEG"))
    return buffer.getvalue()


def draw_keypoints(rgb: np.ndarray, box, points: np.ndarray, number: int | None = None, *,
                   taken: list | None = None) -> np.ndarray:
    """The face box, its keypoints (five on a face under 40 pixels) and its number on a tag beside the box, at
    least as tall as an 11-pixel font or 1/120 of the photo's shorter side; `taken`, if given, lists the tags
    already on this photo (x0, y0, x1, y1), for this one to avoid, and gets this one's."""
    out = rgb.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    short = min(out.shape[:2])
    thick = max(1, int((x1 - x0) / 80), min(short // 1000, (x1 - x0) // 12))  # 1 pixel vanishes in a big photo
    cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 0), thick)
    pts, small = np.asarray(points, float).reshape(-1, 2), x1 - x0 < 40
    if small:  # 68 dots on a face this small are one blob: eye centres, nose tip and mouth corners instead
        pts = np.array([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]]) if len(pts) == 68 else []
    for x, y in pts:
        cv2.circle(out, (int(round(x)), int(round(y))), thick + (not small), (255, 40, 40), -1, cv2.LINE_AA)
    if number is not None:
        _number_tag(out, (x0, y0, x1, y1), number, thick, taken)
    return out


def _number_tag(out: np.ndarray, box: tuple[int, int, int, int], number: int, thick: int, taken: list | None) -> None:
    """Draw a face's number, white on a green tag, beside its box (above, below, left, right; inside its corner
    only when nothing else fits), clear of the tags in `taken`, and add this one there."""
    x0, y0, x1, y1 = box
    short = min(out.shape[:2])
    floor = max(11, short // 120)
    px = min(max(floor, (x1 - x0) // 8), max(floor, short // 24))  # a font size, as the identify labels use
    scale, weight, pad = 0.75 * px / 22, max(1, round(px / 12)), max(2, px // 6)  # digits 3/4 of px tall
    (w, h), _ = cv2.getTextSize(str(number), cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    tw, th = w + 2 * pad, h + 2 * pad
    spots = [(x0, y0 - th), (x1 - tw, y0 - th), (x0, y1 + 1), (x1 - tw, y1 + 1), (x0 - tw, y0), (x1 + 1, y0)]
    inside = [(x, y) for x, y in spots if 0 <= x <= out.shape[1] - tw and 0 <= y <= out.shape[0] - th]
    spots = inside + [(max(0, min(x0 + thick, out.shape[1] - tw)), max(0, min(y0 + thick, out.shape[0] - th)))]
    clear = [s for s in spots if not any(s[0] < t[2] and t[0] < s[0] + tw and s[1] < t[3] and t[1] < s[1] + th
                                         for t in taken or [])]
    x, y = (clear or spots)[0]
    cv2.rectangle(out, (x, y), (x + tw - 1, y + th - 1), (0, 150, 0), -1)
    cv2.putText(out, str(number), (x + pad, y + pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), weight,
                cv2.LINE_AA)
    if taken is not None:
        taken.append((x, y, x + tw, y + th))


def draw_sunglasses(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Draw a pair of dark sunglasses over the eyes, rotated with the eye line (68-point scheme)."""
    if len(points) != 68:
        raise KeyfaceError("the sunglasses filter needs a 68-point model")
    out = rgb.copy()
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    span = np.linalg.norm(right - left)
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    axes = (int(span * 0.42), int(span * 0.3))
    for c in (left, right):
        cv2.ellipse(out, (int(c[0]), int(c[1])), axes, angle, 0, 360, (20, 20, 25), -1, cv2.LINE_AA)
        cv2.ellipse(out, (int(c[0] - axes[0] * 0.3), int(c[1] - axes[1] * 0.4)), (axes[0] // 4, axes[1] // 5),
                    angle, 0, 360, (120, 120, 140), -1, cv2.LINE_AA)  # a glint on each lens
    thick = max(2, int(span / 18))
    bridge_l, bridge_r = left + (right - left) * 0.36, left + (right - left) * 0.64
    cv2.line(out, tuple(int(v) for v in bridge_l), tuple(int(v) for v in bridge_r), (20, 20, 25), thick, cv2.LINE_AA)
    for c, d in ((left, left - right), (right, right - left)):  # arms towards the ears
        end = c + d * 0.75
        cv2.line(out, tuple(int(v) for v in c), tuple(int(v) for v in end), (20, 20, 25), thick, cv2.LINE_AA)
    return out
