"""The one rule that turns a detector's face box into the square crop a keypoint net sees, and the affine
maps between a photo and a square crop of it (pixels and points move by the same matrix)."""
from __future__ import annotations

import cv2
import numpy as np

# MTCNN boxes run from the brows to the chin; the 68 points reach past them (jaw, brows), so
# the crop is the box's larger side times CROP_SCALE, its centre moved down by CROP_SHIFT_Y of the
# box height. The two numbers were fitted on youtube_faces_68 *training* frames (see README).
CROP_SCALE = 1.3
CROP_SHIFT_Y = 0.14


def crop_box(face_box: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """Square crop (x0, y0, x1, y1) around a detector box, by the rule above."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    side = CROP_SCALE * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + CROP_SHIFT_Y * (y1 - y0)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def pick_labelled_face(face_boxes: list, keypoints: np.ndarray) -> int | None:
    """Index of the detected box whose centre is nearest the labelled keypoints' centre."""
    if not face_boxes:
        return None
    centre = np.nanmean(keypoints, axis=0)
    dists = [np.hypot((b[0] + b[2]) / 2 - centre[0], (b[1] + b[3]) / 2 - centre[1]) for b in face_boxes]
    return int(np.argmin(dists))


def crop_matrix(box: np.ndarray, out_size: int) -> np.ndarray:
    """3x3 matrix mapping the square box (x0, y0, x1, y1) onto an out_size crop."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = out_size / max(x1 - x0, 1e-6)
    return np.array([[s, 0, -x0 * s], [0, s, -y0 * s], [0, 0, 1]], np.float64)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine matrix to (N, 2) points; NaN points stay NaN."""
    m = np.asarray(matrix, np.float64)[:2]
    return (points @ m[:, :2].T + m[:, 2]).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop that a 2x3 (or 3x3) photo-to-crop matrix selects (bilinear, edges replicated)."""
    return cv2.warpAffine(image, np.asarray(matrix, np.float64)[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def square_crops(image: np.ndarray, face_boxes: list, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The size x size crops (N, S, S[, C]) uint8 a keypoint net sees for detector boxes, by the rule above,
    and each crop's 3x3 photo-to-crop matrix."""
    mats = [crop_matrix(crop_box(box), size) for box in face_boxes]
    crops = [warp_image(image, m, size) for m in mats]
    return np.asarray(crops, np.uint8).reshape(len(mats), size, size, *image.shape[2:]), mats


def to_photo(points: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
    """Points (N, P, 2) in crop pixels back in photo pixels, each crop by the inverse of its matrix."""
    return np.array([transform_points(p, np.linalg.inv(m)) for p, m in zip(points, mats)], np.float32)


def warp_faces(image: np.ndarray, mats: list[np.ndarray], size: int, points: list[np.ndarray]
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each face's size x size crop by its 2x3 photo-to-crop matrix, and its points moved with it."""
    return [warp_image(image, m, size) for m in mats], [transform_points(p, m) for p, m in zip(points, mats)]
