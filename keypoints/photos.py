"""Keypoints for photos on disk: every face found, mapped back to the photo, drawn if asked."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.images import load_image, save_image
from keyface.keypoints.detector import DEFAULT_DETECTOR, make_detector
from keyface.keypoints.predictor import KeypointPredictor, resolve_model

log = logging.getLogger(__name__)


def predict_photos(photos: list[str], model: str | None, models: str | None,
                   detector: str = DEFAULT_DETECTOR) -> tuple[list[dict], list[str]]:
    """For each photo: its faces with box, score and keypoints; and one error line per bad photo."""
    predictor = KeypointPredictor.load(resolve_model(model, models))
    detector = make_detector(detector)
    results, errors = [], []
    for photo in photos:
        try:
            rgb = load_image(photo)
        except KeyfaceError as exc:
            errors.append(str(exc))
            results.append({"photo": photo, "faces": [], "error": str(exc)})
            continue
        faces = detector.detect(rgb)
        points = predictor.predict(rgb, [f.box for f in faces])
        results.append({"photo": photo, "width": rgb.shape[1], "height": rgb.shape[0], "faces": [
            {"box": [round(v, 1) for v in f.box], "score": round(f.score, 4),
             "keypoints": np.round(p, 2).tolist()} for f, p in zip(faces, points)]})
        if not faces:
            errors.append(f"{photo}: no face found")
    return results, errors


def annotate_photos(results: list[dict], out: Path, filter_name: str | None) -> None:
    """Write annotated copies: to the file `out` for one photo, else into the directory `out`."""
    todo = [r for r in results if r["faces"]]
    single = len(results) == 1 and out.suffix.lower() in {".jpg", ".jpeg", ".png"}
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    for r in todo:
        rgb = load_image(r["photo"])
        for face in r["faces"]:
            pts = np.asarray(face["keypoints"], np.float32)
            rgb = draw_sunglasses(rgb, pts) if filter_name == "sunglasses" else draw_keypoints(rgb, face["box"], pts)
        target = out if single else out / (Path(r["photo"]).stem + "_keypoints.jpg")
        save_image(target, rgb)
        log.info("wrote %s", target)


def draw_keypoints(rgb: np.ndarray, box, points: np.ndarray) -> np.ndarray:
    """The face box and a dot per keypoint, sized to the face."""
    out = rgb.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    thick = max(1, int((x1 - x0) / 80))
    cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 0), thick)
    for x, y in points:
        cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (255, 40, 40), -1, cv2.LINE_AA)
    return out


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
