"""Predict keypoints on faces in photos: crop by the box rule, run the net, map back to the photo."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.paths import models_dir
from keyface.keypoints.crops import square_crops, to_photo
from keyface.keypoints.schemes import Scheme, get_scheme

log = logging.getLogger(__name__)

DEFAULT_MODEL = "keypoints-68.keras"  # shipped inside the package (keypoints/weights/)
# LiteRT runs the keypoint net with int8 weights: ~0.3 ms a face on one core against ~1 ms in float32, at a
# keypoint NME of 0.0481 against 0.0480 (docs/benchmarks.md); "float32" gives Keras's points to 1e-5 px.
LITE_PRECISION = "int8"


def to_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """RGB uint8 to a model's colour mode: grey (H, W) for 1 channel, else RGB unchanged."""
    import cv2
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if channels == 1 else rgb


def default_model_path() -> Path:
    """The 68-point model shipped with the package."""
    return Path(str(resources.files("keyface.keypoints") / "weights" / DEFAULT_MODEL))


def resolve_model(name: str | os.PathLike | None, models: str | os.PathLike | None = None) -> Path:
    """A model path from a name: an existing file, a file in the models directory, or the default."""
    if not name:
        return default_model_path()
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (models_dir(models) / "keypoints" / path.name, models_dir(models) / "keypoints" / f"{path.name}.keras"):
        if candidate.is_file():
            return candidate
    raise KeyfaceError(f"keypoint model {name!r} not found (as a file or in {models_dir(models) / 'keypoints'})")


@dataclass
class KeypointPredictor:
    """A loaded keypoint net (run by LiteRT, or by Keras for training) with its scheme and input size."""
    network: Callable[[np.ndarray], np.ndarray]  # (N, S, S, C) float32 crops -> (N, 2P) in [-0.5, 0.5]
    scheme: Scheme
    input_size: int
    channels: int
    metadata: dict
    path: Path
    precision: str = "float32"  # what ran it: LiteRT in int8, or float32 (LiteRT or Keras: the same points)

    @property
    def version(self) -> str:
        """What its points depend on: the model file, and int8 where it ran so (float32 runs agree to 1e-5 px,
        so a float32 run keeps the file's bare version, as caches made before int8 existed have it)."""
        from keyface.runtime.networks import file_version
        return file_version(self.path) + ("-int8" if self.precision == "int8" else "")

    @classmethod
    def load(cls, path: Path, runtime: str = "litert", precision: str = LITE_PRECISION) -> "KeypointPredictor":
        """Load a keypoint model file written by `keyface keypoints train`; "litert" runs it without
        TensorFlow (converted once, in `precision`), "keras" as a Keras model."""
        from keyface.runtime.modelfile import load_model, read_metadata
        from keyface.runtime.networks import KerasNetwork, load_lite
        if runtime not in ("litert", "keras"):
            raise KeyfaceError(f"unknown runtime {runtime!r}: litert or keras")
        meta = read_metadata(path, expect_kind="keypoints")
        network = load_lite(path, precision) if runtime == "litert" else KerasNetwork(load_model(path)[0])
        mcfg = meta["config"]["model"]
        return cls(network, get_scheme(meta["scheme"]), mcfg["input_size"], mcfg["channels"], meta, Path(path),
                   precision if runtime == "litert" else "float32")

    def crops(self, rgb: np.ndarray, boxes: list) -> tuple[np.ndarray, list[np.ndarray]]:
        """Crops (N, S, S, C) float32 for the face boxes, and each crop's 3x3 photo->crop matrix."""
        crops, mats = square_crops(to_channels(rgb, self.channels), boxes, self.input_size)
        return crops.astype(np.float32).reshape(len(boxes), self.input_size, self.input_size, self.channels), mats

    def predict_crops(self, x: np.ndarray) -> np.ndarray:
        """Keypoints (N, P, 2) in crop pixels for a batch of crops."""
        if len(x) == 0:
            return np.zeros((0, self.scheme.n_points, 2), np.float32)
        out = np.asarray(self.network(x)).reshape(len(x), -1, 2)  # (N, 2P) -> (N, P, 2)
        return (out + 0.5) * self.input_size

    def predict(self, rgb: np.ndarray, boxes: list) -> np.ndarray:
        """Keypoints (N, P, 2) in photo pixels for the faces at the given detector boxes."""
        x, mats = self.crops(rgb, boxes)
        return to_photo(self.predict_crops(x), mats)
