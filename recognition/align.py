"""Face alignment as pure functions: five keypoint anchors -> similarity transform -> template crop."""
from __future__ import annotations

import cv2
import numpy as np

# Where the eyes, nose tip and mouth corners land in a 112x112 crop (the ArcFace template used by
# insightface); image-left eye first, as Scheme.anchor_points returns them.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)


def template(size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """The 5-point template for a size x size crop; zoom < 1 shows more of the head, shift_y < 0 moves it up."""
    centred = (TEMPLATE_112 - 56.0) * zoom
    return (centred + 56.0) * (size / 112.0) + np.array([0.0, shift_y * size])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (rotation, uniform scale, shift) mapping src onto dst (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # never a reflection
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max(s.var(0).sum(), 1e-12)
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def alignment_matrix(anchors: np.ndarray, size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """The 2x3 matrix taking a photo's 5 anchors onto the template of a size x size crop."""
    return similarity_transform(anchors, template(size, zoom, shift_y))


def align_face(image: np.ndarray, anchors: np.ndarray, size: int, zoom: float = 1.0,
               shift_y: float = 0.0) -> np.ndarray:
    """The aligned size x size crop of the face whose 5 anchors are given (grey or RGB in, same out)."""
    matrix = alignment_matrix(anchors, size, zoom, shift_y)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
