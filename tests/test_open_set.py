"""Open-set cuts (identify's 'unknown'), dlib's face chip, and C fine-tuned from the dlib source."""
from __future__ import annotations

import numpy as np
import pytest

from keyface.data.errors import KeyfaceError
from keyface.keypoints.predictor import (DLIB_FIT_POINTS, InputSpec, dlib_anchor_template, dlib_chip_matrix,
                                        dlib_template)
from keyface.recognition.core.open_set import cut_at_far, enrolled_subset, open_set_metadata


def test_cut_names_exactly_the_allowed_share_of_strangers():
    d = np.random.default_rng(0).uniform(0.2, 0.9, 1000)
    for far in (0.001, 0.01, 0.05):
        cut = cut_at_far(d, far)
        assert (d <= cut).sum() == int(far * 1000)
    assert (d[:200] <= cut_at_far(d[:200], 0.005)).sum() == 1


def test_cut_refuses_rates_the_strangers_cannot_resolve():
    with pytest.raises(KeyfaceError, match="finer than the 50 calibration strangers"):
        cut_at_far(np.linspace(0, 1, 50), 0.001)
    with pytest.raises(KeyfaceError, match="false-accept rate must be between 0 and 1") as info:
        cut_at_far(np.linspace(0, 1, 50), 1.5)
    assert "--far" not in str(info.value)


@pytest.mark.parametrize("far", [2, -1, 0.0, 1.0, float("nan"), "0.1", True])
def test_a_recogniser_refuses_a_false_accept_rate_when_made_not_at_its_first_identify(far):
    from keyface.data.errors import FalseAcceptRateError
    from keyface.recognition.core.pipeline import Recogniser
    with pytest.raises(FalseAcceptRateError, match="between 0 and 1"):
        Recogniser(pipeline=None, embedder=None, far=far)
    assert Recogniser(pipeline=None, embedder=None, far=0.05)._far == 0.05


def test_open_set_metadata_enrols_five_photos_a_person_and_measures_strangers():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    people = np.repeat(np.arange(20), 8).astype(str).astype(object)
    vectors = centres[np.repeat(np.arange(20), 8)] + rng.normal(0, 0.1, (160, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    strangers = rng.normal(size=(300, 16))
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    assert len(enrolled_subset(people)) == 100 and len(enrolled_subset(people, {"3", "4"})) == 10
    meta = open_set_metadata(vectors, people, strangers, "synthetic")
    assert meta["stranger_count"] == 300 and len(meta["stranger_distances"]) == 31 and meta["identify_far"] == 0.01
    named = (np.asarray(meta["stranger_distances"]) <= meta["identify_threshold"]).sum()
    assert named == 3  # 1% of 300
    assert cut_at_far(meta["stranger_distances"], 0.05, 300) < cut_at_far(meta["stranger_distances"], 0.1, 300)
    with pytest.raises(KeyfaceError, match="beyond what the model file keeps"):
        cut_at_far(meta["stranger_distances"], 0.5, 300)
    few = open_set_metadata(vectors, people, strangers[:20], "synthetic")  # 1% of 20 is not measurable
    assert few["identify_far"] == 0.0 and (np.asarray(few["stranger_distances"]) <= few["identify_threshold"]).sum() == 0


def test_calibration_galleries_have_a_fixed_size_however_many_people_are_held_out():
    from keyface.recognition.core import open_set
    rng = np.random.default_rng(2)
    people = np.repeat(np.arange(120), 3).astype(str).astype(object)
    vectors = rng.normal(size=(360, 8))
    distances = open_set.pooled_distances(vectors, people, rng.normal(size=(10, 8)))
    assert len(distances) == 10 * open_set.DRAWS and np.all(np.diff(distances) >= 0)


def test_recogniser_uses_the_open_set_cut_for_identify_and_the_pair_cut_for_verify():
    from keyface.recognition.core.pipeline import Recogniser
    class Stub:
        name = "stub"
        metadata = {"threshold": 0.5, "identify_threshold": 0.3, "stranger_distances": list(np.linspace(0, 1, 1001))}
    rec = Recogniser(None, Stub())
    assert rec.threshold == 0.5 and rec.identify_threshold == 0.3
    assert Recogniser(None, Stub(), far=0.1).identify_threshold == pytest.approx(0.0995)
    assert Recogniser(None, Stub(), threshold=0.7, far=0.1).identify_threshold == 0.7  # explicit wins
    Stub.metadata = {**Stub.metadata, "stranger_distances": list(np.linspace(0, 0.1, 101)), "stranger_count": 1001}
    with pytest.raises(KeyfaceError, match="beyond what the model file keeps"):  # when made, not at identify
        Recogniser(None, Stub(), far=0.5)
    Stub.metadata = {"threshold": 0.5}
    with pytest.raises(KeyfaceError, match="stub model carries no calibrated identify_threshold: calibrate") as info:
        Recogniser(None, Stub()).identify_threshold
    assert "give a threshold" in str(info.value) and "--" not in str(info.value)  # library terms, no flags


def test_dlib_chip_puts_the_mean_face_where_dlib_does():
    template = dlib_template(150)
    assert np.isnan(template[:17]).all()
    # dlib: (padding + mean) / (2 padding + 1) * size; the nose tip (point 30) has mean (0.490127, 0.515625)
    np.testing.assert_allclose(template[30], (np.array([0.490127, 0.515625]) + 0.25) / 1.5 * 150)
    rotated = template.copy()
    angle, scale, shift = np.deg2rad(20), 1.7, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated[17:] = template[17:] @ rot.T + shift  # a photo whose face is the mean face, moved
    matrix = dlib_chip_matrix(rotated, 150)
    back = rotated[DLIB_FIT_POINTS] @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(back, template[DLIB_FIT_POINTS], atol=1e-6)
    anchors = dlib_anchor_template(150)
    assert anchors.shape == (5, 2) and anchors[0, 0] < anchors[1, 0]  # image-left eye first


def test_mtcnn_alignment_uses_the_detectors_landmarks():
    from keyface.keypoints.predictor import face_matrix
    from keyface.recognition.core.pipeline import Face
    anchors = dlib_anchor_template(150)
    face = Face((0, 0, 150, 150), 1.0, np.zeros((68, 2)), landmarks=anchors * 2 + 10)
    matrix = face_matrix(face, InputSpec(150, 3, alignment="dlib-mtcnn5"))
    np.testing.assert_allclose(matrix, [[0.5, 0, -5], [0, 0.5, -5]], atol=1e-9)
    with pytest.raises(ValueError, match="unknown alignment"):
        face_matrix(face, InputSpec(150, 3, alignment="nonsense"))
    bare = Face((0, 0, 150, 150), 1.0, np.zeros((68, 2)))  # a detector without landmarks (blazeface)
    with pytest.raises(KeyfaceError, match="needs the detector's 5 landmarks.*mtcnn") as info:
        face_matrix(bare, InputSpec(150, 3, alignment="dlib-mtcnn5"))
    assert "--" not in str(info.value)


def test_fine_tuning_starts_from_the_source_and_exports_a_unit_embedding(tmp_path):
    import keras
    from keyface.facenet.train import TrainConfig, build_start
    from keyface.recognition.approaches.registry import find_model_file, registered
    cfg = TrainConfig(source="dlib-resnet", source_model=str(find_model_file(registered("dlib-resnet"), None)))
    assert cfg.approach == "facenet-dlib" and cfg.spec.size == 150 and cfg.spec.alignment == "dlib68"
    model, meta = build_start(cfg)
    source = keras.models.load_model(cfg.source_model, compile=False)
    chips = np.random.default_rng(0).uniform(0, 255, (2, 150, 150, 3)).astype(np.float32)
    raw = source.predict(chips, verbose=0)
    np.testing.assert_allclose(model.predict(chips, verbose=0), raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               atol=1e-5)
    assert "dlib" in meta["source"]
    with pytest.raises(KeyfaceError, match="unknown source"):
        build_start(TrainConfig(source="imagenet"))
