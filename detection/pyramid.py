"""Where a fully convolutional face detector looks in a photo of any size: scales and tiles.

A detector that sees faces between ~20 and ~80 px of its own input finds every face from `min_face`
px up to the whole photo when it runs at scales 1/4 apart, the finest one putting a `min_face` face at
~20 px, down to the scale where the photo itself is a few times the detector's input; one whole-photo
pass covers the rest. Each scale is cut into tiles that overlap by more than the largest face that
scale must find, so that every face lies whole inside at least one tile and no tile is large enough
to make memory grow with the photo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PyramidConfig:
    """How to search a photo: the faces a scale is for, the scales' step, and how tiles are cut."""
    face_px: float = 18.0    # a min_face face is made this wide (px) at the finest scale
    step: float = 4.0        # each coarser scale is this much smaller: it finds faces 20-80 px of its own
    whole_px: int = 128      # the whole-photo pass's input; scales whose image is under ~1.25x of it add nothing
    max_upscale: float = 2.0 # a min_face under face_px / 2 is not looked for in enlarged pixels
    tile: int = 1024         # the longest tile side (px of the scaled image); memory stays bounded by it
    overlap: int = 96        # larger than any face a scale must find (80 px) plus margin
    align: int = 16          # the detector's coarsest stride: tiles are multiples of it


def scales(height: int, width: int, min_face: float, cfg: PyramidConfig = PyramidConfig()) -> list[float]:
    """The tiled scales for a photo, finest first; the whole-photo pass is not among them."""
    side = max(height, width)
    scale = min(cfg.face_px / max(float(min_face), 1.0), cfg.max_upscale)
    out = []
    while side * scale > cfg.whole_px * 1.25:
        out.append(scale)
        scale /= cfg.step
    return out


def levels(height: int, width: int, min_face: float, cfg: PyramidConfig = PyramidConfig()
           ) -> list[tuple[float, tuple[int, int], list[tuple[int, int, int, int]]]]:
    """The whole search plan for a photo, finest scale first: each scale, the (width, height) of the photo
    resized to it, and the tiles cutting that image."""
    out = []
    for scale in scales(height, width, min_face, cfg):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        out.append((scale, size, tiles(size[1], size[0], cfg)))
    return out


def tiles(height: int, width: int, cfg: PyramidConfig = PyramidConfig()) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) covering a height x width image: as few as the longest side allows, equal in
    size (a multiple of cfg.align; the last may reach past the image, which is padded), overlapping by
    at least cfg.overlap."""
    xs, tile_w = _cuts(width, cfg)
    ys, tile_h = _cuts(height, cfg)
    return [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]


def _cuts(length: int, cfg: PyramidConfig) -> tuple[list[int], int]:
    """Start offsets along one side and the tile length there."""
    n = max(1, math.ceil((length - cfg.overlap) / (cfg.tile - cfg.overlap)))
    size = _aligned(math.ceil((length + (n - 1) * cfg.overlap) / n), cfg.align)
    if n == 1:
        return [0], size
    stride = (length - size) / (n - 1)
    return [int(round(i * stride)) for i in range(n)], size


def _aligned(n: int, align: int) -> int:
    """n rounded up to a multiple of align."""
    return -(-n // align) * align
