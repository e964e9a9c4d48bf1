"""Triplet loss on squared L2 distances with online mining inside a batch (FaceNet, Schroff et al. 2015).

Three ways to choose triplets from a batch of embeddings and integer labels:
- semi-hard: for each anchor-positive pair, the closest negative that is still farther than the
  positive (the paper's choice); where none is, the farthest negative (as TF-Addons does);
- batch-hard: for each anchor, its farthest positive and closest negative (Hermans et al. 2017);
- batch-all: every valid triplet, averaged over those with a non-zero loss.
Each returns a scalar loss; all are pure functions of (labels, embeddings).
"""
from __future__ import annotations

import tensorflow as tf

MARGIN = 0.2
MINING = ("semi-hard", "batch-hard", "batch-all")


def squared_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """(N, N) squared Euclidean distances, clipped at zero against rounding."""
    dot = tf.matmul(embeddings, embeddings, transpose_b=True)
    norms = tf.linalg.diag_part(dot)
    return tf.maximum(norms[:, None] - 2.0 * dot + norms[None, :], 0.0)


def _masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(positive mask: same label, not the anchor itself; negative mask: another label)."""
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    return tf.logical_and(same, not_self), tf.logical_not(same)


def batch_hard_loss(labels: tf.Tensor, embeddings: tf.Tensor, margin: float = MARGIN) -> tf.Tensor:
    """Mean over anchors of relu(farthest positive - closest negative + margin)."""
    d = squared_distances(embeddings)
    positive, negative = _masks(labels)
    hardest_positive = tf.reduce_max(tf.where(positive, d, 0.0), axis=1)
    big = tf.reduce_max(d) + 1.0
    hardest_negative = tf.reduce_min(tf.where(negative, d, big), axis=1)
    has_both = tf.logical_and(tf.reduce_any(positive, 1), tf.reduce_any(negative, 1))
    losses = tf.nn.relu(hardest_positive - hardest_negative + margin)
    return _masked_mean(losses, has_both)


def semi_hard_loss(labels: tf.Tensor, embeddings: tf.Tensor, margin: float = MARGIN) -> tf.Tensor:
    """Mean over anchor-positive pairs of relu(d_ap - d_an + margin), the negative chosen semi-hard."""
    d = squared_distances(embeddings)
    positive, negative = _masks(labels)
    big = tf.reduce_max(d) + 1.0
    # [a, p, n]: negatives n of anchor a that lie farther than its positive p
    farther = tf.logical_and(negative[:, None, :], d[:, None, :] > d[:, :, None])
    closest_farther = tf.reduce_min(tf.where(farther, d[:, None, :], big), axis=2)
    farthest = tf.reduce_max(tf.where(negative, d, 0.0), axis=1)
    chosen = tf.where(tf.reduce_any(farther, axis=2), closest_farther, farthest[:, None])
    losses = tf.nn.relu(d - chosen + margin)
    valid = tf.logical_and(positive, tf.reduce_any(negative, axis=1, keepdims=True))
    return _masked_mean(losses, valid)


def batch_all_loss(labels: tf.Tensor, embeddings: tf.Tensor, margin: float = MARGIN) -> tf.Tensor:
    """Mean of relu(d_ap - d_an + margin) over valid triplets whose loss is above zero."""
    d = squared_distances(embeddings)
    positive, negative = _masks(labels)
    losses = tf.nn.relu(d[:, :, None] - d[:, None, :] + margin)
    valid = tf.logical_and(positive[:, :, None], negative[:, None, :])
    active = tf.logical_and(valid, losses > 1e-16)
    return _masked_mean(losses, active)


def _masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of values where mask holds; zero where it holds nowhere."""
    mask = tf.cast(mask, values.dtype)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def triplet_loss(mining: str):
    """The loss function for a mining strategy name."""
    table = {"semi-hard": semi_hard_loss, "batch-hard": batch_hard_loss, "batch-all": batch_all_loss}
    if mining not in table:
        raise ValueError(f"mining must be one of {MINING}, not {mining!r}")
    return table[mining]
