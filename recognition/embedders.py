"""One interface for every face embedder, and a registry of named implementations.

An embedder says what input it wants (aligned crop size, colour mode, template zoom) and maps a
batch of aligned faces to L2-normalised float32 vectors. Implementations register a loader under a
name; the gallery only ever sees the name, the model version and the dimension.
"""
from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from data.errors import KeyfaceError
from data.paths import models_dir

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

    @abstractmethod
    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """Unnormalised (N, D) vectors."""

    def embed(self, batch: FaceBatch) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.asarray(self._raw_embed(batch), np.float32))


class KerasFileEmbedder(Embedder):
    """An embedder whose network is a keyface .keras file carrying its input spec in the metadata."""

    def __init__(self, path: Path):
        from keypoints.modelfile import load_model
        self.model, self.metadata = load_model(path, expect_kind="embedder")
        self.spec = InputSpec(**self.metadata["input"])  # fields a file predates take their defaults
        self.dim = int(self.model.output_shape[-1])
        self.version = file_version(path)
        self.mirror = bool(self.metadata.get("mirror_average", False))  # embed face + mirror image, summed
        self._fn = None

    batch = 64  # faces per forward pass: bounds memory on large galleries

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        """The network on the crops, in chunks, through one traced function."""
        if self._fn is None:  # Keras predict() costs ~20 ms a call; a traced function does not
            import tensorflow as tf
            self._fn = tf.function(lambda t: self.model(t, training=False))
        crops = np.asarray(batch.crops, np.float32)
        if not self.mirror:
            return self._forward(crops)
        # face and mirror image in one pass: 1.6x the time of the face alone, not 2x
        both = self._forward(np.concatenate([crops, crops[:, :, ::-1]]))
        return both[: len(crops)] + both[len(crops):]

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """The network on crops in chunks of `batch`."""
        return np.concatenate([np.asarray(self._fn(crops[i: i + self.batch])) for i in range(0, len(crops), self.batch)])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def file_version(path: Path) -> str:
    """A model version: the first 12 hex digits of the model file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Registration:
    """How to load one named embedder: its model file name and the loader."""
    name: str
    model_file: str  # looked up in MODELS/embedders/, then among the package's shipped weights
    loader: Callable[[Path], Embedder]
    description: str
    shipped: list[Path] = field(default_factory=list)
    made_by: str = ""  # the command that makes its model file (default: `keyface train NAME`)


REGISTRY: dict[str, Registration] = {}


def register(reg: Registration) -> None:
    """Add an embedder to the registry (implementations call this from recognition.registry)."""
    REGISTRY[reg.name] = reg


def find_model_file(reg: Registration, models: str | os.PathLike | None, model: str | None = None) -> Path:
    """The model file for an embedder: an explicit path, the models directory, or a shipped default."""
    if model:
        path = Path(model)
        if not path.is_file():
            raise KeyfaceError(f"embedder model file not found: {path}")
        return path
    candidates = [models_dir(models) / "embedders" / reg.model_file, *reg.shipped]
    for path in candidates:
        if path.is_file():
            return path
    raise KeyfaceError(f"no model for embedder {reg.name!r}: expected {candidates[0]} "
                       f"(make one with `{reg.made_by or 'keyface train ' + reg.name}`)")


def registered(name: str) -> Registration:
    """The registration of a named embedder."""
    from recognition import registry  # noqa: F401  fills REGISTRY; importing it loads no weights
    if name not in REGISTRY:
        raise KeyfaceError(f"unknown embedder {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def load_embedder(name: str, models: str | os.PathLike | None = None, model: str | None = None) -> Embedder:
    """Load the named embedder from its model file."""
    reg = registered(name)
    path = find_model_file(reg, models, model)
    embedder = reg.loader(path)
    made_as = embedder.metadata.get("approach")
    if made_as and made_as != name:  # else a gallery would carry the wrong embedder's name
        raise KeyfaceError(f"{path} is a {made_as!r} model, not {name!r}: pass --embedder {made_as}")
    return embedder
