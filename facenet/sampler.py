"""P x K batches: P people, K faces each, so that every anchor in a batch has a positive."""
from __future__ import annotations

import numpy as np

from keyface.data.errors import KeyfaceError


def pk_batches(labels: np.ndarray, people: int, per_person: int, n_batches: int,
               rng: np.random.Generator) -> np.ndarray:
    """(n_batches, people * per_person) indices into labels; only labels with 2+ faces are drawn.

    A person with fewer than per_person faces gives all of them, then repeats (augmentation makes the
    repeats differ), so each person in a batch has at least two distinct faces.
    """
    labels = np.asarray(labels)
    eligible = eligible_people(labels, people)
    members = {name: np.flatnonzero(labels == name) for name in eligible}
    batches = np.empty((n_batches, people * per_person), np.int64)
    for b in range(n_batches):
        chosen = rng.choice(eligible, people, replace=False)
        batches[b] = np.concatenate([_k_faces(members[name], per_person, rng) for name in chosen])
    return batches


def eligible_people(labels: np.ndarray, people: int) -> np.ndarray:
    """The labels with 2+ faces, refused (KeyfaceError) when there are fewer than a batch's `people`."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    eligible = names[counts >= 2]
    if len(eligible) < people:
        raise KeyfaceError(f"P x K batches need {people} people with 2+ faces, found {len(eligible)} (train on "
                           "more people)")
    return eligible


def _k_faces(indices: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k of a person's face indices: distinct where there are enough, else all plus repeats."""
    if len(indices) >= k:
        return rng.choice(indices, k, replace=False)
    return np.concatenate([rng.permutation(indices), rng.choice(indices, k - len(indices))])


def pk_dataset(crops: np.ndarray, labels: np.ndarray, people: int, per_person: int, batches_per_epoch: int,
               seed: int, augment=None):
    """tf.data of (faces, labels) P x K batches, drawn afresh every epoch (repeats without end: pass
    steps_per_epoch=batches_per_epoch to fit), optionally augmented."""
    import tensorflow as tf
    eligible_people(labels, people)  # here, in one line: raised inside tf.data it would be a graph error
    rng = np.random.default_rng(seed)
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int32)

    def epoch():
        yield from pk_batches(codes, people, per_person, batches_per_epoch, rng)
    ds = tf.data.Dataset.from_generator(epoch, output_signature=tf.TensorSpec([people * per_person], tf.int64))
    ds = ds.repeat()
    images, targets = tf.constant(crops), tf.constant(codes)
    ds = ds.map(lambda idx: (tf.gather(images, idx), tf.gather(targets, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(2)
