"""Embedders: the geometry baseline separates people by shape; approach A trains and exports."""
import numpy as np
import pytest

from keyface.recognition.approaches.registry import load_embedder
from keyface.keypoints.predictor import FaceBatch
from keyface.recognition.core.pipeline import l2_normalise
from keyface.recognition.training.face_sets import FaceSet
from keyface.recognition.core.verification import (best_threshold, distance_auc, kfold_accuracy, pair_distances,
                                                   sample_pairs, tar_at_far)


def synthetic_faces(n_people=12, per_person=6, seed=0, size=96):
    """Faces whose keypoints carry a per-person shape offset plus noise; crops are noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(20, 90, (68, 2))
    shapes = base + rng.normal(0, 2.0, (n_people, 68, 2))
    people = np.repeat([f"person{i}" for i in range(n_people)], per_person).astype(object)
    kp = shapes[np.repeat(np.arange(n_people), per_person)] + rng.normal(0, 0.4, (len(people), 68, 2))
    crops = rng.integers(0, 255, (len(people), size, size, 1), dtype=np.uint8)
    return FaceSet(crops, kp.astype(np.float32), people, np.array([f"p{i}.jpg" for i in range(len(people))], object))


def test_geometry_embedder_separates_people_by_shape(tmp_path):
    from keyface.recognition.approaches.geometry import fit_geometry
    train, test = synthetic_faces(seed=0), synthetic_faces(seed=0)
    test.keypoints += np.random.default_rng(1).normal(0, 0.4, test.keypoints.shape).astype(np.float32)
    path = fit_geometry(train, 16, tmp_path / "geometry.keras", "synthetic")
    emb = load_embedder("geometry", model=str(path))
    vectors = emb.embed(FaceBatch(test.crops, test.keypoints))
    assert vectors.shape == (len(test), emb.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    pairs = sample_pairs(test.people, 200, 0)
    assert distance_auc(pair_distances(vectors[pairs[:, 0]], vectors[pairs[:, 1]]), pairs[:, 2]) > 0.95


@pytest.mark.slow
def test_approach_a_trains_head_then_finetunes_and_exports_the_embedding(tmp_path):
    import keras
    from keyface.runtime.networks import save_model
    from keyface.keypoints.models import ModelConfig, build_model
    from keyface.recognition.approaches.keypoints import IdentityConfig, train_approach_a
    keras.utils.set_random_seed(0)
    kp_cfg = ModelConfig(width=8, embedding_dim=24)
    kp_path = save_model(build_model(kp_cfg), tmp_path / "kp.keras",
                         {"kind": "keypoints", "scheme": "ibug68", "config": {"model": kp_cfg.to_dict()}})
    faces = synthetic_faces(n_people=8, per_person=4)
    cfg = IdentityConfig(head_epochs=1, finetune_epochs=1, batch_size=16, val_fraction=0.25)
    out = train_approach_a(faces, kp_path, cfg, tmp_path / "run", "synthetic")
    emb = load_embedder("keypoints", model=str(out))
    assert emb.dim == 24 and emb.spec.size == 96 and emb.spec.channels == 1
    v = emb.embed(FaceBatch(faces.crops[:5], faces.keypoints[:5]))
    assert v.shape == (5, 24) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert (tmp_path / "run" / "metrics-finetune.csv").is_file()


def test_unknown_embedder_and_missing_model_are_one_line_errors(tmp_path):
    from keyface.data.errors import KeyfaceError
    with pytest.raises(KeyfaceError, match="unknown embedder"):
        load_embedder("nope")
    with pytest.raises(KeyfaceError, match="not found"):
        load_embedder("geometry", model=str(tmp_path / "missing.keras"))


def test_threshold_is_chosen_on_training_folds_only():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(300), np.zeros(300)].astype(bool)
    dist = np.where(same, rng.normal(0.3, 0.1, 600), rng.normal(0.7, 0.1, 600))
    t = best_threshold(dist, same)
    assert 0.4 < t < 0.6
    folds = np.array_split(rng.permutation(600), 10)
    mean, _ = kfold_accuracy(dist, same, folds)
    assert 0.95 < mean <= 1.0
    assert 0.5 < tar_at_far(dist, same, 1e-2) <= 1.0


def test_l2_normalise_keeps_zero_rows_finite():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0, 0]])


def test_calibration_uses_exactly_the_people_the_trainer_held_out(tmp_path):
    from keyface.data.errors import KeyfaceError
    from keyface.runtime.networks import read_metadata
    from keyface.recognition.approaches.calibration import calibrate
    from keyface.recognition.approaches.geometry import fit_geometry
    from keyface.recognition.training.held_out import held_out_names, split_people
    faces = synthetic_faces(n_people=20, size=112)
    train, val = split_people(faces, 0.2, 3)
    path = fit_geometry(train, 8, tmp_path / "geometry.keras", "synthetic", held_out_names(val))
    assert read_metadata(path)["held_out_people"] == held_out_names(val) and len(held_out_names(val)) == 4
    threshold = calibrate(path, faces, "geometry")
    meta = read_metadata(path)
    assert meta["threshold"] == threshold and meta["held_out_people"] == held_out_names(val)
    assert not set(meta["held_out_people"]) & set(map(str, train.people))
    unnamed = fit_geometry(train, 8, tmp_path / "unnamed.keras", "synthetic")
    with pytest.raises(KeyfaceError, match="does not name the people its training held out"):
        calibrate(unnamed, faces, "geometry")
