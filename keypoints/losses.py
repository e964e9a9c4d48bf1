"""Masked keypoint loss and the NME metric; missing labels are NaN and simply do not count."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable("keyface")
def masked_l1(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Mean absolute error over the labelled coordinates only (NaN = missing)."""
    mask = tf.math.is_finite(y_true)
    diff = tf.abs(tf.where(mask, y_true, 0.0) - y_pred)
    return tf.reduce_sum(tf.where(mask, diff, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(mask, tf.float32)), 1.0)


@keras.saving.register_keras_serializable("keyface")
class StandardisedL1(keras.losses.Loss):
    """Masked L1 with each coordinate divided by its spread over the training shapes.

    Every point then counts on the same scale: the jaw's large spread no longer drowns the eyes.
    """

    def __init__(self, std, name: str = "standardised_l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.std = np.asarray(std, np.float32)

    def call(self, y_true, y_pred):
        return masked_l1(y_true / self.std, y_pred / self.std)

    def get_config(self):
        return {**super().get_config(), "std": self.std.tolist()}


@keras.saving.register_keras_serializable("keyface")
class NME(keras.metrics.Metric):
    """Mean point-to-point error over the outer-eye-corner distance (300-W), labelled points only."""

    def __init__(self, eye_corners: tuple[int, int] = (36, 45), name: str = "nme", **kwargs):
        super().__init__(name=name, **kwargs)
        self.eye_corners = tuple(eye_corners)
        self.total = self.add_weight(name="total", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulate per-image NME."""
        per_image = nme_tf(y_true, y_pred, self.eye_corners)
        valid = tf.math.is_finite(per_image)
        self.total.assign_add(tf.reduce_sum(tf.where(valid, per_image, 0.0)))
        self.count.assign_add(tf.reduce_sum(tf.cast(valid, tf.float32)))

    def result(self):
        """Mean NME so far."""
        return self.total / tf.maximum(self.count, 1.0)

    def get_config(self):
        """Serialisable config."""
        return {**super().get_config(), "eye_corners": self.eye_corners}


def nme_tf(y_true: tf.Tensor, y_pred: tf.Tensor, eye_corners: tuple[int, int]) -> tf.Tensor:
    """Per-image NME in TensorFlow; NaN where the eye corners are unlabelled."""
    a, b = eye_corners
    norm = tf.norm(y_true[:, a] - y_true[:, b], axis=-1)
    err = tf.norm(y_true - y_pred, axis=-1)
    mask = tf.math.is_finite(err)
    mean_err = tf.reduce_sum(tf.where(mask, err, 0.0), -1) / tf.reduce_sum(tf.cast(mask, tf.float32), -1)
    return mean_err / norm


def nme(y_true: np.ndarray, y_pred: np.ndarray, eye_corners: tuple[int, int]) -> np.ndarray:
    """Per-image NME in NumPy: mean labelled-point error over the outer-eye-corner distance."""
    a, b = eye_corners
    norm = np.linalg.norm(y_true[:, a] - y_true[:, b], axis=-1)
    return np.nanmean(np.linalg.norm(y_true - y_pred, axis=-1), axis=-1) / norm
