"""Face alignment as pure functions: five keypoint anchors -> similarity transform -> template crop."""
from __future__ import annotations

import numpy as np

from keyface.keypoints.crops import warp_image
from keyface.keypoints.schemes import IBUG68
# Where the eyes, nose tip and mouth corners land in a 112x112 crop (the ArcFace template used by
# insightface); image-left eye first, as Scheme.anchor_points returns them.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)


# dlib's mean face (get_face_chip_details): iBUG points 17..67 as fractions of the face box. dlib
# fits a similarity from points 27-54 and 60-64 (brows and the lower lip left out) onto it, and its
# ResNet face descriptor reads a 150 px chip of it with padding 0.25.
DLIB_MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326], [0.426036, 0.609345],
    [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326], [0.121737, 0.216423],
    [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
    [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099], [0.254149, 0.780233],
    [0.340985, 0.745405], [0.428858, 0.727388], [0.490127, 0.742578], [0.551395, 0.727388],
    [0.639268, 0.745405], [0.726104, 0.780233], [0.642159, 0.864805], [0.556721, 0.902192],
    [0.490127, 0.909281], [0.423532, 0.902192], [0.338094, 0.864805], [0.290379, 0.784792],
    [0.428096, 0.778746], [0.490127, 0.785343], [0.552157, 0.778746], [0.689874, 0.784792],
    [0.553364, 0.824182], [0.490127, 0.831803], [0.42689, 0.824182]], np.float64)
DLIB_FIT_POINTS = [i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67)]
DLIB_PADDING = 0.25


def dlib_template(size: int, padding: float = DLIB_PADDING) -> np.ndarray:
    """dlib's mean face as 68 (x, y) points of a size x size chip (the jaw, which dlib has not, is NaN)."""
    points = np.full((68, 2), np.nan)
    points[17:] = (padding + DLIB_MEAN_FACE) / (2 * padding + 1) * size
    return points


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


def dlib_chip_matrix(keypoints68: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 matrix of dlib's face chip: 36 of the 68 keypoints fitted onto dlib's mean face."""
    return similarity_transform(keypoints68[DLIB_FIT_POINTS], dlib_template(size)[DLIB_FIT_POINTS])


def dlib_anchor_template(size: int) -> np.ndarray:
    """dlib's chip as a 5-anchor template (eye centres, nose tip, mouth corners of its mean face)."""
    return IBUG68.anchor_points(dlib_template(size))


def align_face(image: np.ndarray, anchors: np.ndarray, size: int, zoom: float = 1.0,
               shift_y: float = 0.0) -> np.ndarray:
    """The aligned size x size crop of the face whose 5 anchors are given (grey or RGB in, same out)."""
    return warp_image(image, alignment_matrix(anchors, size, zoom, shift_y), size)
