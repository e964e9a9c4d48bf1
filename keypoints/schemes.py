"""Keypoint schemes as data: point names, groups, flip permutation and the NME normaliser."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Scheme:
    """A keypoint layout: names, groups of indices, flip permutation and NME eye-corner indices."""
    name: str
    point_names: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    flip: tuple[int, ...]  # flip[i] = index that point i becomes after a horizontal flip
    outer_eye_corners: tuple[int, int]  # the 300-W NME normaliser (inter-ocular distance)
    align_points: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        """Number of keypoints."""
        return len(self.point_names)

    def anchor_points(self, keypoints: np.ndarray) -> np.ndarray:
        """Return the 5 alignment anchors (eye centres, nose tip, mouth corners) as (..., 5, 2)."""
        order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        return np.stack([keypoints[..., list(self.align_points[k]), :].mean(axis=-2) for k in order], -2)


def _ibug68() -> Scheme:
    """The iBUG 300-W 68-point layout; 'left'/'right' are as seen in the image."""
    groups = {"jaw": tuple(range(0, 17)), "brows": tuple(range(17, 27)), "nose": tuple(range(27, 36)),
              "eyes": tuple(range(36, 48)), "mouth": tuple(range(48, 68))}
    # Mirror pairs of the 300-W markup: jaw, brows, nostrils, eye contours, lips.
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    flip = list(range(68))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    names = tuple(f"{g}_{i - idx[0]}" for g, idx in groups.items() for i in idx)
    align = {"left_eye": tuple(range(36, 42)), "right_eye": tuple(range(42, 48)), "nose": (30,),
             "mouth_left": (48,), "mouth_right": (54,)}
    return Scheme("ibug68", names, groups, tuple(flip), (36, 45), align)


def _kaggle15() -> Scheme:
    """Kaggle Facial Keypoints: 15 points; 'left' is the person's left (the image's right)."""
    names = ("left_eye_center", "right_eye_center", "left_eye_inner_corner", "left_eye_outer_corner",
             "right_eye_inner_corner", "right_eye_outer_corner", "left_eyebrow_inner_end",
             "left_eyebrow_outer_end", "right_eyebrow_inner_end", "right_eyebrow_outer_end",
             "nose_tip", "mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip",
             "mouth_center_bottom_lip")
    groups = {"eyes": (0, 1, 2, 3, 4, 5), "brows": (6, 7, 8, 9), "nose": (10,), "mouth": (11, 12, 13, 14)}
    flip = (1, 0, 4, 5, 2, 3, 8, 9, 6, 7, 10, 12, 11, 13, 14)
    # Image-left first so anchors match ibug68's order (image-left eye, image-right eye, ...).
    align = {"left_eye": (1,), "right_eye": (0,), "nose": (10,), "mouth_left": (12,), "mouth_right": (11,)}
    return Scheme("kaggle15", names, groups, flip, (5, 3), align)


IBUG68 = _ibug68()
KAGGLE15 = _kaggle15()
SCHEMES = {s.name: s for s in (IBUG68, KAGGLE15)}


def get_scheme(name: str) -> Scheme:
    """Look a scheme up by name."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown keypoint scheme {name!r}; known: {sorted(SCHEMES)}") from None
