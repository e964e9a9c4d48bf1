"""The custom layers a keyface model file may hold, registered with Keras so that `load_model` can read
them back (and nothing else: Keras's safe mode refuses code in a file)."""
from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable("keyface")
class ShapePrior(keras.layers.Layer):
    """Maps standardised outputs z to crop coordinates: z * std + mean of the training shapes.

    The net then starts at the mean shape and every coordinate is learnt on the same scale;
    without it the jaw's large spread swamped the eyes and training stalled at the mean shape.
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32).reshape(-1, 2)
        self.std = np.asarray(std, np.float32).reshape(-1, 2)

    def call(self, z):
        return z * self.std + self.mean

    def get_config(self):
        return {**super().get_config(), "mean": self.mean.tolist(), "std": self.std.tolist()}
