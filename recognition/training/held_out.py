"""Validation on people held out of training: the split, and a per-epoch verification monitor.

Accuracy on the people a net trains on hides its overfitting, so every trainer holds out whole
people, scores verification on them each epoch, and records their names in the model file (which
calibration then reads).
"""
from __future__ import annotations

import logging

import keras
import numpy as np

from keyface.recognition.core.verification import (accuracy_at, best_threshold, distance_auc, pair_distances,
                                                   tar_at_far)
from keyface.recognition.training.face_sets import FaceSet

log = logging.getLogger(__name__)


def split_people(faces: FaceSet, val_fraction: float, seed: int) -> tuple[FaceSet, FaceSet]:
    """Hold out whole people (with 2+ photos, so they make same-person pairs) for validation."""
    names, counts = np.unique(faces.people, return_counts=True)
    rng = np.random.default_rng(seed)
    pool = names[counts >= 2]
    held = set(rng.choice(pool, max(2, int(val_fraction * len(names))), replace=False))
    mask = np.array([p in held for p in faces.people])
    return faces.subset(~mask), faces.subset(mask)


class VerificationMonitor(keras.callbacks.Callback):
    """Each epoch: verification on held-out people (AUC, accuracy at the best threshold on those pairs,
    TAR at FAR=1e-3); keeps the best weights by AUC and calls save() on each new best."""

    def __init__(self, embedding, inputs: np.ndarray, pairs: np.ndarray, save=None):
        super().__init__()
        self.embedding, self.inputs, self.pairs, self.save = embedding, inputs, pairs, save
        self.best, self.best_weights, self.history = -1.0, embedding.get_weights(), []

    def on_epoch_end(self, epoch, logs=None):
        """Score the held-out pairs, log them, remember the best embedding so far."""
        scores = verification_scores(self.embedding.predict(self.inputs, verbose=0, batch_size=256), self.pairs)
        self.history.append(scores)
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in scores.items()})
        log.info("held-out people: AUC %.4f  accuracy %.4f  TAR@FAR1e-3 %.4f", scores["auc"], scores["accuracy"],
                 scores["tar_at_far_1e-3"])
        if scores["auc"] > self.best:
            self.best, self.best_weights = scores["auc"], self.embedding.get_weights()
            if self.save is not None:
                self.save()


def verification_scores(vectors: np.ndarray, pairs: np.ndarray) -> dict:
    """AUC, accuracy at the best threshold on these pairs, and TAR at FAR=1e-3."""
    distances = pair_distances(vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    same = pairs[:, 2].astype(bool)
    threshold = best_threshold(distances, same)
    return {"auc": distance_auc(distances, same), "accuracy": accuracy_at(distances, same, threshold),
            "tar_at_far_1e-3": tar_at_far(distances, same, 1e-3)}


def held_out_names(val: FaceSet) -> list[str]:
    """The held-out people's names, sorted: stored in the model file for calibration."""
    return sorted(map(str, np.unique(val.people)))
