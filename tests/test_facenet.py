"""Approach C: triplet losses and mining against plain NumPy, the P x K sampler, a tiny training run."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from keyface.facenet import losses
from keyface.facenet.sampler import pk_batches


def _embeddings(seed: int, n: int = 12, dim: int = 8, people: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.arange(n) % people
    rng.shuffle(labels)
    return labels, x


def _d(x):
    return np.array([[np.sum((a - b) ** 2) for b in x] for a in x])


def numpy_batch_all(labels, x, m):
    d, terms = _d(x), []
    for a, p, n in itertools.product(range(len(x)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            terms.append(max(d[a, p] - d[a, n] + m, 0.0))
    active = [t for t in terms if t > 1e-16]
    return np.mean(active) if active else 0.0


def numpy_batch_hard(labels, x, m):
    d, terms = _d(x), []
    for a in range(len(x)):
        pos = [d[a, p] for p in range(len(x)) if p != a and labels[p] == labels[a]]
        neg = [d[a, n] for n in range(len(x)) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(max(max(pos) - min(neg) + m, 0.0))
    return np.mean(terms)


def numpy_semi_hard(labels, x, m):
    d, terms = _d(x), []
    for a, p in itertools.permutations(range(len(x)), 2):
        if labels[a] != labels[p]:
            continue
        neg = [d[a, n] for n in range(len(x)) if labels[n] != labels[a]]
        farther = [v for v in neg if v > d[a, p]]
        chosen = min(farther) if farther else max(neg)
        terms.append(max(d[a, p] - chosen + m, 0.0))
    return np.mean(terms)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,reference", [("batch-all", numpy_batch_all), ("batch-hard", numpy_batch_hard),
                                            ("semi-hard", numpy_semi_hard)])
def test_mining_agrees_with_numpy_reference(seed, name, reference):
    labels, x = _embeddings(seed)
    got = float(losses.triplet_loss(name)(labels, x, 0.2))
    assert got == pytest.approx(reference(labels, x, 0.2), rel=1e-4, abs=1e-6)
    assert got > 0  # random embeddings violate the margin: the check is not vacuous


def test_squared_distances_and_well_separated_batches():
    labels, x = _embeddings(3)
    np.testing.assert_allclose(losses.squared_distances(x).numpy(), _d(x), atol=1e-5)
    separated = np.eye(4, dtype=np.float32)[labels]  # each person at its own orthogonal point
    for name in losses.MINING:
        assert float(losses.triplet_loss(name)(labels, separated, 0.2)) == 0.0
    with pytest.raises(ValueError):
        losses.triplet_loss("easy")


def test_pk_batches_always_give_every_anchor_a_positive():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), rng.integers(1, 7, size=30))  # some people have one face
    batches = pk_batches(labels, 8, 4, 200, rng)
    assert batches.shape == (200, 32)
    for batch in batches:
        people = labels[batch].reshape(8, 4)
        assert (people == people[:, :1]).all() and len(np.unique(people[:, 0])) == 8
        for row in batch.reshape(8, 4):
            assert len(np.unique(row)) >= 2  # two distinct faces: a real positive, not the anchor again
    counts = np.bincount(labels)
    assert not np.isin(labels[batches.ravel()], np.flatnonzero(counts < 2)).any()


def test_pk_batches_refuse_too_few_people():
    from keyface.data.errors import KeyfaceError
    with pytest.raises(KeyfaceError, match="people with 2\\+ faces"):
        pk_batches(np.array([0, 0, 1, 2]), 2, 2, 1, np.random.default_rng(0))
    from keyface.facenet.sampler import pk_dataset  # when the dataset is made: inside tf.data, a graph error
    with pytest.raises(KeyfaceError, match="need 2 people with 2\\+ faces, found 1"):
        pk_dataset(np.zeros((4, 8, 8, 3), np.float32), np.array([0, 0, 1, 2]), 2, 2, 1, seed=0)


def _pattern_faces(people: int = 10, per_person: int = 8, size: int = 32):
    """Each person a fixed random pattern, each face that pattern plus noise: learnable identities."""
    from keyface.recognition.training.face_sets import FaceSet
    rng = np.random.default_rng(0)
    patterns = rng.uniform(40, 215, (people, size, size, 3))
    index = np.repeat(np.arange(people), per_person)
    crops = np.clip(patterns[index] + rng.normal(0, 25, (len(index), size, size, 3)), 0, 255).astype(np.uint8)
    return FaceSet(crops, np.zeros((len(index), 68, 2), np.float32), np.array([f"p{i}" for i in index], object),
                   np.array([f"{i}.png" for i in range(len(index))], object))


def test_tiny_triplet_training_learns_held_out_people_and_exports_only_the_embedding(tmp_path):
    import keras

    from keyface.facenet.model import FacenetConfig
    from keyface.facenet.train import TrainConfig, train_facenet
    from keyface.runtime.networks import read_metadata
    from keyface.keypoints.predictor import FaceBatch
    from keyface.recognition.approaches.registry import load_embedder
    faces = _pattern_faces()
    cfg = TrainConfig(model=FacenetConfig(input_size=32, widths=(8, 16), blocks=(1, 1)), people_per_batch=4,
                      faces_per_person=4, epochs=3, lr=3e-3, patience=5, val_fraction=0.2)
    path = train_facenet(faces, cfg, tmp_path / "run", "synthetic shapes")
    import json
    history = json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"]
    assert len(history) == 3 and history[-1]["auc"] > history[0]["auc"] + 0.05  # people it never saw
    assert (tmp_path / "run" / "metrics.csv").is_file() and "git_revision" in (tmp_path / "run" / "config.json").read_text()
    assert read_metadata(path)["approach"] == "facenet"
    model = keras.models.load_model(path, compile=False)
    assert model.name == "facenet" and model.output_shape == (None, 128)
    emb = load_embedder("facenet", model=str(path))
    vectors = emb.embed(FaceBatch(faces.crops[:5], faces.keypoints[:5]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
