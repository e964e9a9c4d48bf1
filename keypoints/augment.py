"""Augmentation that moves keypoints with the pixels: every geometric change is one 2x3 matrix."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from keyface.keypoints.predictor import Scheme, crop_matrix, transform_points, warp_image


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms used in training."""
    flip: bool = True
    rotate_deg: float = 18.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.06  # fraction of the crop side
    brightness: float = 0.25
    contrast: float = 0.3
    blur_prob: float = 0.2
    noise_std: float = 6.0  # grey levels


def similarity_matrix(center: tuple[float, float], angle_deg: float, scale: float,
                      shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 rotation+scale about center, followed by a shift in pixels."""
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D(center, angle_deg, scale)
    m[:2, 2] += shift
    return m


def flip_matrix(width: int) -> np.ndarray:
    """3x3 horizontal mirror of an image width pixels wide (pixel centres at integers)."""
    return np.array([[-1, 0, width - 1], [0, 1, 0], [0, 0, 1]], np.float64)


def warp(image: np.ndarray, points: np.ndarray, matrix: np.ndarray, out_size: int,
         scheme: Scheme | None = None, flipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Warp image and points by one matrix to an out_size square; swap left/right if flipped."""
    crop = warp_image(image, matrix, out_size)
    moved = transform_points(points, matrix)
    if flipped:
        if scheme is None:
            raise ValueError("a flip needs the scheme's left/right permutation")
        moved = moved[list(scheme.flip)]
    return crop, moved


def random_geometry(rng: np.random.Generator, cfg: AugmentConfig, out_size: int) -> tuple[np.ndarray, bool]:
    """A random 3x3 matrix acting on an out_size crop (flip, rotation, scale, shift) and the flip flag."""
    c = (out_size - 1) / 2.0
    shift = rng.uniform(-cfg.shift, cfg.shift, 2) * out_size
    m = similarity_matrix((c, c), rng.uniform(-cfg.rotate_deg, cfg.rotate_deg),
                          rng.uniform(*cfg.scale), (float(shift[0]), float(shift[1])))
    flipped = bool(cfg.flip and rng.random() < 0.5)
    if flipped:
        m = m @ flip_matrix(out_size)
    return m, flipped


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random brightness/contrast, occasional blur and Gaussian noise on a uint8 image."""
    x = image.astype(np.float32)
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    x = x + rng.uniform(-cfg.brightness, cfg.brightness) * 255
    if rng.random() < cfg.blur_prob:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if cfg.noise_std > 0:
        x = x + rng.normal(0, rng.uniform(0, cfg.noise_std), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, points: np.ndarray, box: np.ndarray, out_size: int, scheme: Scheme,
            rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Crop the box to out_size with random geometry and photometry; points follow the pixels."""
    geo, flipped = random_geometry(rng, cfg, out_size)
    crop, moved = warp(image, points, geo @ crop_matrix(box, out_size), out_size, scheme, flipped)
    return photometric(crop, rng, cfg), moved
