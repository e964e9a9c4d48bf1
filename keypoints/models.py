"""Keypoint regression networks in a small registry; building one is explicit, never at import."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import keras
import numpy as np
from keras import layers

from keyface.runtime.layers import ShapePrior

EMBEDDING_LAYER = "embedding"  # the penultimate layer: approach A's features
OUTPUT_LAYER = "keypoints"
EMBEDDING_ACTIVATION = "elu"  # relu units here died under the L1 loss and left the net stuck near the mean shape


@dataclass(frozen=True)
class ModelConfig:
    """What a keypoint net is: its architecture, input crop and number of points."""
    arch: str = "keyface-res"
    input_size: int = 96
    channels: int = 1
    n_points: int = 68
    width: int = 32
    embedding_dim: int = 256
    dropout: float = 0.0  # augmentation regularises enough; dropout here only slowed training

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def _input(cfg: ModelConfig):
    """The image input (raw 0..255 pixels) and its scaling to [-1, 1], part of every model."""
    inp = keras.Input((cfg.input_size, cfg.input_size, cfg.channels), name="image")
    return inp, layers.Rescaling(1 / 127.5, offset=-1.0)(inp)


def default_shape_prior(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A neutral prior (centre, 0.1 spread) for nets built without training statistics."""
    return np.zeros((n_points, 2), np.float32), np.full((n_points, 2), 0.1, np.float32)


def _coordinates(x, cfg: ModelConfig, prior):
    """Dense standardised outputs, reshaped to points, mapped to crop units by the shape prior."""
    x = layers.Reshape((cfg.n_points, 2))(layers.Dense(cfg.n_points * 2, name="coords")(x))
    return ShapePrior(*(prior or default_shape_prior(cfg.n_points)), name=OUTPUT_LAYER)(x)


def _head(x, cfg: ModelConfig, hidden: int, dropout: float, prior):
    """Flatten, a penultimate dense layer named EMBEDDING_LAYER, and the coordinate output."""
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden, activation=EMBEDDING_ACTIVATION, name=EMBEDDING_LAYER)(x)
    return _coordinates(layers.Dropout(dropout)(x), cfg, prior)


def naimishnet(cfg: ModelConfig, prior=None) -> keras.Model:
    """NaimishNet (Agarwal et al., arXiv 1710.00977): 4 conv/pool blocks, rising dropout, 2 dense."""
    inp, x = _input(cfg)
    for i, (filters, kernel) in enumerate([(32, 4), (64, 3), (128, 2), (256, 1)]):
        x = layers.Conv2D(filters, kernel, activation="elu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.1 * (i + 1))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1000, activation="elu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(1000, activation="elu", name=EMBEDDING_LAYER)(x)
    return keras.Model(inp, _coordinates(layers.Dropout(0.6)(x), cfg, prior), name="naimishnet")


def conv5bn(cfg: ModelConfig, prior=None) -> keras.Model:
    """The seed projects' net: 5 x (conv 3x3, BatchNorm, ReLU, max-pool), then dense layers."""
    inp, x = _input(cfg)
    for filters in (32, 64, 128, 256, 512):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    return keras.Model(inp, _head(x, cfg, 512, 0.3, prior), name="conv5bn")


def _conv_bn(x, filters: int, stride: int = 1):
    """3x3 conv, BatchNorm, ReLU."""
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _residual(x, filters: int):
    """Two 3x3 convs with an identity shortcut (He et al. 2016)."""
    y = _conv_bn(x, filters)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    return layers.ReLU()(layers.Add()([x, y]))


def keyface_res(cfg: ModelConfig, prior=None) -> keras.Model:
    """Our net: a stride-2 stem, four residual stages (w..8w) halving the map, flatten head.

    Plain 3x3 convs beat depthwise ones on CPU at this size, and a flatten head keeps where
    features are, which global pooling would throw away for coordinate regression.
    """
    w = cfg.width
    inp, x = _input(cfg)
    x = _conv_bn(x, w // 2, stride=2)
    for filters in (w, 2 * w, 4 * w):
        x = _conv_bn(x, filters, stride=2)
        x = _residual(x, filters)
    x = _conv_bn(x, 8 * w, stride=2)
    return keras.Model(inp, _head(x, cfg, cfg.embedding_dim, cfg.dropout, prior), name="keyface_res")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "keyface-res": keyface_res, "naimishnet": naimishnet, "conv5bn": conv5bn}


def build_model(cfg: ModelConfig, prior: tuple[np.ndarray, np.ndarray] | None = None) -> keras.Model:
    """Build the architecture named in cfg; prior = (mean, std) of training shapes in crop units."""
    if cfg.arch not in ARCHITECTURES:
        raise ValueError(f"unknown keypoint architecture {cfg.arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[cfg.arch](cfg, prior)
