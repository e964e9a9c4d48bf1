"""Kaggle "Facial Keypoints Detection" CSVs (15 keypoints, 96x96 grey): read, write, build."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from keyface.data.errors import DataError
from keyface.data.paths import require_file

log = logging.getLogger(__name__)

KAGGLE_SIZE = 96
KAGGLE_POINTS = (
    "left_eye_center", "right_eye_center",
    "left_eye_inner_corner", "left_eye_outer_corner",
    "right_eye_inner_corner", "right_eye_outer_corner",
    "left_eyebrow_inner_end", "left_eyebrow_outer_end",
    "right_eyebrow_inner_end", "right_eyebrow_outer_end",
    "nose_tip", "mouth_left_corner", "mouth_right_corner",
    "mouth_center_top_lip", "mouth_center_bottom_lip",
)
KAGGLE_COLUMNS = tuple(f"{name}_{axis}" for name in KAGGLE_POINTS for axis in ("x", "y"))
IMAGE_COLUMN = "Image"
ID_COLUMN = "ImageId"
# Kaggle's partially labelled rows (about 70% of training.csv) keep only these four points.
PARTIAL_POINTS = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")

_N_PIXELS = KAGGLE_SIZE * KAGGLE_SIZE
# iBUG-68 index of each Kaggle point that is a single landmark; the eye centres are contour means.
# iBUG is image-oriented (36-41 = image-left eye = the person's right), Kaggle person-oriented.
_IBUG_SINGLE = {
    "left_eye_inner_corner": 42, "left_eye_outer_corner": 45,
    "right_eye_inner_corner": 39, "right_eye_outer_corner": 36,
    "left_eyebrow_inner_end": 22, "left_eyebrow_outer_end": 26,
    "right_eyebrow_inner_end": 21, "right_eyebrow_outer_end": 17,
    "nose_tip": 30, "mouth_left_corner": 54, "mouth_right_corner": 48,
    "mouth_center_top_lip": 51, "mouth_center_bottom_lip": 57,
}
_IBUG_MEANS = {"left_eye_center": slice(42, 48), "right_eye_center": slice(36, 42)}


# -- reading ----------------------------------------------------------------------------------

def read_kaggle_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Kaggle CSV: images uint8 (N, 96, 96) and points float32 (N, 15, 2), NaN = missing."""
    path = require_file(path, "Kaggle keypoint CSV")
    try:
        table = pd.read_csv(path, dtype={IMAGE_COLUMN: str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    if IMAGE_COLUMN not in table.columns:
        raise DataError(f"{path}: missing column {IMAGE_COLUMN!r}")
    images = np.stack([_parse_image(path, row, cell)
                       for row, cell in enumerate(table[IMAGE_COLUMN])]) if len(table) else \
        np.zeros((0, KAGGLE_SIZE, KAGGLE_SIZE), np.uint8)
    points = _parse_points(path, table)
    log.debug("%s: %d rows, %d fully labelled", path, len(table),
              int(np.isfinite(points).all(axis=(1, 2)).sum()))
    return images, points


def _where(row: int) -> str:
    """Human position of a data row: 1-based row and the file line (the header is line 1)."""
    return f"row {row + 1} (line {row + 2})"


def _parse_image(path: Path, row: int, cell: object) -> np.ndarray:
    """Parse one Image cell: exactly 9216 space-separated integers in 0..255."""
    if not isinstance(cell, str):
        raise DataError(f"{path}: {_where(row)}: empty Image cell")
    try:
        values = np.asarray(cell.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        raise DataError(f"{path}: {_where(row)}: Image cell holds a non-integer value") from None
    if values.size != _N_PIXELS:
        raise DataError(f"{path}: {_where(row)}: Image cell has {values.size} values, "
                        f"expected {_N_PIXELS} ({KAGGLE_SIZE}x{KAGGLE_SIZE})")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}: {_where(row)}: Image values outside 0..255")
    return values.astype(np.uint8).reshape(KAGGLE_SIZE, KAGGLE_SIZE)


def _parse_points(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The 30 coordinate columns as float32 (N, 15, 2); a test-format file (ImageId) gives NaN."""
    present = [c for c in KAGGLE_COLUMNS if c in table.columns]
    if not present and ID_COLUMN in table.columns:
        # Kaggle's test.csv: ImageId and Image only, nothing labelled.
        return np.full((len(table), len(KAGGLE_POINTS), 2), np.nan, np.float32)
    missing = [c for c in KAGGLE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    coords = table[list(KAGGLE_COLUMNS)]
    numeric = coords.apply(pd.to_numeric, errors="coerce")
    # A cell that was filled but did not parse is garbled; an empty cell is a missing label.
    bad = numeric.isna() & coords.notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}: {_where(int(row))}: column {KAGGLE_COLUMNS[col]} holds "
                        f"non-numeric {coords.iat[row, col]!r}")
    return numeric.to_numpy(np.float32).reshape(len(table), len(KAGGLE_POINTS), 2)


# -- writing ----------------------------------------------------------------------------------

def write_kaggle_csv(path: str | os.PathLike, images: np.ndarray, points: np.ndarray) -> None:
    """Write images (N, 96, 96) uint8 and points (N, 15, 2) as a Kaggle CSV (NaN -> empty cell)."""
    images = np.asarray(images)
    points = np.asarray(points)
    n = len(images)
    if images.shape[1:] != (KAGGLE_SIZE, KAGGLE_SIZE):
        raise ValueError(f"images must be (N, 96, 96), got {images.shape}")
    if points.shape != (n, len(KAGGLE_POINTS), 2):
        raise ValueError(f"points must be ({n}, 15, 2), got {points.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    # float64 so that pandas writes each float32 value with enough digits to read back exactly.
    table = pd.DataFrame(points.reshape(n, -1).astype(np.float64), columns=list(KAGGLE_COLUMNS))
    table[IMAGE_COLUMN] = [" ".join(map(str, im.ravel().tolist())) for im in images]
    table.to_csv(path, index=False, na_rep="")
    log.debug("wrote %d rows to %s", n, path)


# -- building from 68 points ------------------------------------------------------------------

def ibug68_to_kaggle15(kp68: np.ndarray) -> np.ndarray:
    """Map iBUG-68 keypoints (..., 68, 2) to Kaggle's 15 points (..., 15, 2)."""
    kp68 = np.asarray(kp68)
    if kp68.shape[-2:] != (68, 2):
        raise ValueError(f"keypoints must be (..., 68, 2), got {kp68.shape}")
    dtype = kp68.dtype if np.issubdtype(kp68.dtype, np.floating) else np.float32
    out = np.empty(kp68.shape[:-2] + (len(KAGGLE_POINTS), 2), dtype)
    for k, name in enumerate(KAGGLE_POINTS):
        if name in _IBUG_MEANS:
            out[..., k, :] = kp68[..., _IBUG_MEANS[name], :].mean(axis=-2, dtype=np.float64)
        else:
            out[..., k, :] = kp68[..., _IBUG_SINGLE[name], :]
    return out


def _grey(image: np.ndarray) -> np.ndarray:
    """Grey uint8 (H, W) from grey (H, W), (H, W, 1) or RGB (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise ValueError(f"images must be (H, W) or (H, W, 3), got {image.shape}")
    return image


def _crop_matrix(box: np.ndarray) -> np.ndarray:
    """Affine matrix taking the square box x0, y0, x1, y1 onto the 96x96 output."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = x1 - x0, y1 - y0
    if width <= 0 or height <= 0:
        raise ValueError(f"box {box.tolist()} is empty")
    if abs(width - height) > 1 + 0.01 * width:
        raise ValueError(f"box {box.tolist()} is not square ({width:g} x {height:g})")
    s = KAGGLE_SIZE / width
    return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])


def _warp(grey: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp grey onto 96x96, blurring first when shrinking so that fine detail does not alias."""
    scale = matrix[0, 0]
    if scale < 1:
        # warpAffine samples bilinearly (it treats INTER_AREA as linear), so pre-filter instead.
        grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=(1 / scale - 1) / 2)
    return cv2.warpAffine(grey, matrix, (KAGGLE_SIZE, KAGGLE_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def build_kaggle_from_68(images: list[np.ndarray], kp68: np.ndarray,
                         boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop each square box to 96x96 grey and map its 68 points to Kaggle's 15 in that crop."""
    kp68 = np.asarray(kp68, np.float64)
    boxes = np.asarray(boxes, np.float64)
    n = len(images)
    if kp68.shape != (n, 68, 2) or boxes.shape != (n, 4):
        raise ValueError(f"for {n} images need kp68 ({n}, 68, 2) and boxes ({n}, 4), "
                         f"got {kp68.shape} and {boxes.shape}")
    out_images = np.zeros((n, KAGGLE_SIZE, KAGGLE_SIZE), np.uint8)
    out_points = np.zeros((n, 68, 2), np.float64)
    for i, (image, points, box) in enumerate(zip(images, kp68, boxes)):
        matrix = _crop_matrix(box)
        out_images[i] = _warp(_grey(image), matrix)
        out_points[i] = points @ matrix[:, :2].T + matrix[:, 2]
    return out_images, ibug68_to_kaggle15(out_points).astype(np.float32)


def blank_like_kaggle(points: np.ndarray, rng: np.random.Generator,
                      partial_fraction: float = 0.7) -> np.ndarray:
    """Copy of points (N, 15, 2) where a random fraction of rows keep only the 4 partial points."""
    if not 0 <= partial_fraction <= 1:
        raise ValueError(f"partial_fraction must be in [0, 1], got {partial_fraction}")
    out = np.array(points, dtype=np.float32, copy=True)
    if out.ndim != 3 or out.shape[1:] != (len(KAGGLE_POINTS), 2):
        raise ValueError(f"points must be (N, 15, 2), got {out.shape}")
    n = len(out)
    # An exact count of rows (not a coin per row) so small sets hit the fraction too.
    rows = rng.permutation(n)[:int(round(partial_fraction * n))]
    blanked = [k for k, name in enumerate(KAGGLE_POINTS) if name not in PARTIAL_POINTS]
    out[np.ix_(rows, blanked)] = np.nan
    return out
