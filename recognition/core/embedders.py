"""One interface for every face embedder.

An embedder says what input it wants (aligned crop size, colour mode, template zoom) and maps a
batch of aligned faces to L2-normalised float32 vectors. Implementations register a loader under a
name; the gallery only ever sees the name, the model version and the dimension.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.runtime.networks import PRECISIONS, KerasNetwork, file_version, load_lite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """The aligned crop an embedder wants."""
    size: int
    channels: int  # 1 = grey, 3 = RGB
    zoom: float = 1.0  # template zoom: < 1 keeps more of the head
    shift_y: float = 0.0  # template shift, a fraction of the size (< 0: face higher in the crop)
    alignment: str = "template5"  # how the crop is cut: see recognition.pipeline.ALIGNMENTS


@dataclass
class FaceBatch:
    """Aligned faces for an embedder: crops (N, S, S, C) uint8 and 68 keypoints in crop pixels."""
    crops: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


class Embedder(ABC):
    """Maps aligned faces to L2-normalised vectors; name + version identify what made a vector."""
    name: str
    spec: InputSpec
    dim: int
    version: str
    metadata: dict
    precision: str = "float32"  # how its network runs: "int8" or "float32" (KerasFileEmbedder chooses)

    @abstractmethod
    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """Unnormalised (N, D) vectors."""

    def embed(self, batch: FaceBatch) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.asarray(self._raw_embed(batch), np.float32))


class KerasFileEmbedder(Embedder):
    """An embedder whose network is a keyface .keras (or .litert) file carrying its input spec in the metadata:
    every approach whose embedding is its network on the aligned crops runs as one of these, under its
    registered `name`; `precision` "int8" runs the network with 8-bit weights in LiteRT, "float32" in Keras."""
    int8_capable = True  # False where _raw_embed is not the network on the crops
    batch = 64  # faces per forward pass: bounds memory on large galleries

    def __init__(self, path: Path, precision: str = "float32", name: str | None = None, batch: int | None = None):
        from keyface.runtime.networks import load_model
        self.batch = batch or self.batch
        if precision not in PRECISIONS:
            raise KeyfaceError(f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}")
        if precision == "int8" and not self.int8_capable:
            raise KeyfaceError(f"{self.name} runs in float32 only, not int8")
        self.precision, self.model = precision, None
        if precision == "int8":  # the Keras network is not loaded at all: no TensorFlow, a shorter start-up
            self.network = load_lite(path, "int8", expect_kind="embedder")
            # int8 vectors differ slightly from float32 ones: its version ends "-int8", so a gallery keeps them apart
            self.metadata, self.version = self.network.metadata, self.network.version
            self.dim = self.network.output_shape[-1]
        else:
            self.model, self.metadata = load_model(path, expect_kind="embedder")
            self.network = KerasNetwork(self.model)
            self.dim, self.version = int(self.model.output_shape[-1]), file_version(path)
        # the registry's name, a subclass's, or what the file says it was made as
        self.name = name or getattr(type(self), "name", None) or self.metadata.get("approach", "")
        self.spec = InputSpec(**self.metadata["input"])  # fields a file predates take their defaults
        self.mirror = bool(self.metadata.get("mirror_average", False))  # embed face + mirror image, summed

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """The network on the crops (and their mirror images, where the model says so), in chunks."""
        crops = np.asarray(batch.crops, np.float32)
        if not self.mirror:
            return self._forward(crops)
        # face and mirror image in one pass: cheaper than two
        both = self._forward(np.concatenate([crops, crops[:, :, ::-1]]))
        return both[: len(crops)] + both[len(crops):]

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """The network on crops in chunks of `batch`."""
        return np.concatenate([self.network(crops[i: i + self.batch]) for i in range(0, len(crops), self.batch)])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)
