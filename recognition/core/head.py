"""A softmax head retrained on a gallery's embeddings (`keyface train-head`): approach A's classifier mode."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError, NoSoftmaxHeadError
from keyface.runtime.networks import load_model, save_model, split_version
from keyface.runtime.provenance import provenance
from keyface.recognition.core.store import SQLiteStore

log = logging.getLogger(__name__)


def fit_head(vectors: np.ndarray, names: np.ndarray, epochs: int = 200, seed: int = 0):
    """A softmax over the people named, fitted on their embeddings: (Keras model, sorted people)."""
    import keras
    people = np.unique(names.astype(str))
    if len(people) < 2:
        raise KeyfaceError("a softmax head needs at least two people in the gallery")
    keras.utils.set_random_seed(seed)
    labels = np.searchsorted(people, names.astype(str))
    model = keras.Sequential([keras.Input((vectors.shape[1],)),
                              keras.layers.Dense(len(people), activation="softmax", name="identity")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(vectors, labels, epochs=epochs, batch_size=256, verbose=0)
    return model, people


def train_head(gallery: SQLiteStore, out: Path, epochs: int = 200, seed: int = 0) -> Path:
    """Fit a softmax over the gallery's people on their stored embeddings; save it beside the gallery."""
    vectors, names = gallery.matrix()
    model, people = fit_head(vectors, names, epochs, seed)
    meta = {"kind": "gallery-head", "embedder": gallery.embedder, "version": gallery.version,
            "people": people.tolist(), "photos": int(len(vectors)), **provenance()}
    path = save_model(model, out, meta, mode=0o600)  # fitted on biometric data, like the gallery beside it
    if len(people) <= 2:  # a softmax over N people gives one of them 1/N or more: at N = 2, the default cut
        log.warning("a softmax head over %d people gives every face at least %.2f for one of them: none comes out "
                    "unknown at a min_probability of %.2f or less (the nearest embedding's cut does not have this "
                    "limit)", len(people), 1 / len(people), 1 / len(people))
    return path


def gallery_head(path: Path, gallery, store) -> "GalleryHead":
    """The softmax head of a gallery (its `store`, None where it is not made yet), saved at `path`: refused
    (NoSoftmaxHeadError) where there is none, or where it was trained on other people than it holds now."""
    if store is None or not path.is_file():
        raise NoSoftmaxHeadError(f"no softmax head for {gallery}: train one on the gallery first", gallery)
    head = GalleryHead(path)
    if (head.embedder, head.version) != (store.embedder, store.version):  # vectors of another model
        raise NoSoftmaxHeadError(f"the softmax head of {gallery} was trained on {_model(head.embedder, head.version)} "
                                 f"embeddings, not the gallery's {_model(store.embedder, store.version)}: train it "
                                 "again", gallery)
    if set(head.people) != {name for name, _ in store.people()}:  # it would name the wrong people
        raise NoSoftmaxHeadError(f"the softmax head of {gallery} was trained on other people than the gallery "
                                 "holds now (added, renamed or removed since): train it again", gallery)
    return head


def _model(embedder: str, version: str) -> str:
    """An embedder's model as a person reads it: its name, model file version and precision."""
    made, precision = split_version(version)
    return f"{embedder} (model {made}, {precision})"


class GalleryHead:
    """The trained head: names and probabilities for embeddings of the same embedder and model version."""

    def __init__(self, path: Path):
        self.model, meta = load_model(path, expect_kind="gallery-head")
        self.embedder, self.version = meta["embedder"], meta["version"]  # what its vectors must be of
        self.people = np.array(meta["people"], dtype=object)

    def classify(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Most probable person and its probability for each vector."""
        probs = np.asarray(self.model(np.asarray(vectors, np.float32), training=False))
        best = probs.argmax(axis=1)
        return self.people[best], probs[np.arange(len(best)), best]


def named_by_head(head: GalleryHead, faces: list, min_probability: float) -> list:
    """The faces named by a gallery's softmax head, each with its probability (unknown, None, under
    min_probability)."""
    from dataclasses import replace
    if not faces:
        return faces
    names, probs = head.classify([f.embedding for f in faces])
    return [replace(f, name=str(n) if p >= min_probability else None, probability=float(p))
            for f, n, p in zip(faces, names, probs)]
