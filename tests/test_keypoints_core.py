"""Schemes, loss and metric, model registry, model files, box rule and the youtube_faces_68 reader."""
import numpy as np
import pytest

from keyface.data.errors import DataError, KeyfaceError
from keyface.data.youtube_faces import person_of, read_frames
from keyface.keypoints.losses import NME, masked_l1, nme
from keyface.keypoints.models import ARCHITECTURES, EMBEDDING_LAYER, ModelConfig, build_model
from keyface.keypoints.predictor import (IBUG68, KAGGLE15, crop_box, get_scheme, pick_labelled_face, square_crops,
                                         to_photo, transform_points, warp_faces, warp_image)
from keyface.runtime.networks import load_model, read_metadata, save_model


@pytest.mark.parametrize("scheme", [IBUG68, KAGGLE15])
def test_flip_permutation_is_an_involution_over_all_points(scheme):
    perm = np.array(scheme.flip)
    assert sorted(perm) == list(range(scheme.n_points))
    np.testing.assert_array_equal(perm[perm], np.arange(scheme.n_points))
    grouped = sorted(i for idx in scheme.groups.values() for i in idx)
    assert grouped == list(range(scheme.n_points))


def test_flip_maps_mirror_points_of_a_symmetric_face():
    # a face mirrored about x=0: the flipped, permuted points equal the original ones
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(68, 2))
    perm = np.array(IBUG68.flip)
    sym = pts.copy()
    for i, j in enumerate(perm):
        if i < j:
            sym[j] = (-sym[i][0], sym[i][1])
        elif i == j:
            sym[i, 0] = 0
    mirrored = sym * (-1, 1)
    np.testing.assert_allclose(mirrored[perm], sym)


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown keypoint scheme"):
        get_scheme("nope")


def test_masked_l1_ignores_missing_labels():
    y_true = np.array([[[1.0, 1.0], [np.nan, np.nan]]], np.float32)
    y_pred = np.array([[[0.0, 1.0], [100.0, 100.0]]], np.float32)
    assert float(masked_l1(y_true, y_pred)) == pytest.approx(0.5)


def test_nme_metric_matches_numpy_reference():
    rng = np.random.default_rng(1)
    y_true = rng.uniform(0, 96, (8, 68, 2)).astype(np.float32)
    y_pred = (y_true + rng.normal(0, 2, y_true.shape)).astype(np.float32)
    reference = np.mean([np.mean(np.linalg.norm(t - p, axis=1)) / np.linalg.norm(t[36] - t[45])
                         for t, p in zip(y_true, y_pred)])
    metric = NME((36, 45))
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(reference, rel=1e-5)
    assert nme(y_true, y_pred, (36, 45)).mean() == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_builds_with_an_embedding_layer(arch):
    model = build_model(ModelConfig(arch=arch, width=8, n_points=15))
    out = model(np.zeros((2, 96, 96, 1), np.float32))
    assert tuple(out.shape) == (2, 15, 2)
    assert model.get_layer(EMBEDDING_LAYER) is not None


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown keypoint architecture"):
        build_model(ModelConfig(arch="resnet-9000"))


def test_model_file_round_trip_keeps_weights_and_metadata(tmp_path):
    model = build_model(ModelConfig(width=8))
    path = save_model(model, tmp_path / "m.keras", {"kind": "keypoints", "note": "x"})
    assert read_metadata(path)["note"] == "x"
    loaded, meta = load_model(path, expect_kind="keypoints")
    x = np.random.default_rng(0).uniform(0, 255, (1, 96, 96, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
    with pytest.raises(KeyfaceError, match="not a 'facenet' model"):
        load_model(path, expect_kind="facenet")


def test_a_non_model_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("hello")
    with pytest.raises(KeyfaceError, match="bad.keras"):
        read_metadata(bad)


def test_crop_box_is_square_and_contains_the_detector_box():
    box = crop_box((10, 20, 60, 90))
    assert box[2] - box[0] == pytest.approx(box[3] - box[1])
    assert box[0] <= 10 and box[2] >= 60 and box[1] <= 20 and box[3] >= 90


def test_pick_labelled_face_takes_the_box_around_the_keypoints():
    pts = np.array([[100, 100], [120, 110]], np.float32)
    assert pick_labelled_face([(0, 0, 30, 30), (90, 90, 130, 130)], pts) == 1
    assert pick_labelled_face([], pts) is None


def test_person_names_from_frame_files():
    assert person_of("Luis_Fonsi_21.jpg") == "Luis_Fonsi"
    with pytest.raises(DataError):
        person_of("nonsense.png")


def test_youtube_reader_names_a_garbled_csv(tmp_path):
    base = tmp_path / "youtube_faces_68"
    (base / "training").mkdir(parents=True)
    (base / "training_frames_keypoints.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="training_frames_keypoints.csv"):
        read_frames(tmp_path, "train")
    with pytest.raises(DataError, match="test_frames_keypoints.csv"):
        read_frames(tmp_path, "test")


@pytest.mark.data
def test_youtube_reader_on_real_data(data_root):
    train, test = read_frames(data_root, "train"), read_frames(data_root, "test")
    assert (len(train), len(test)) == (3462, 770)
    assert len({f.person for f in train}) == 347
    assert all(f.keypoints.shape == (68, 2) for f in test)


def test_square_crops_cut_every_box_and_to_photo_puts_points_back():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [(20, 30, 60, 80), (90, 10, 150, 70)]
    crops, mats = square_crops(image, boxes, 64)
    assert crops.shape == (2, 64, 64, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops[1], warp_image(image, mats[1], 64))
    points = rng.uniform(0, 64, (2, 68, 2)).astype(np.float32)
    back = to_photo(points, mats)
    for in_crop, in_photo, mat in zip(points, back, mats):
        np.testing.assert_allclose(transform_points(in_photo, mat), in_crop, atol=1e-3)
    assert square_crops(image[..., 0], boxes, 64)[0].shape == (2, 64, 64)  # grey stays grey
    assert square_crops(image, [], 64)[0].shape == (0, 64, 64, 3)
    warped, moved = warp_faces(image, mats, 64, list(back))
    assert np.array_equal(warped[0], crops[0]) and np.allclose(moved[0], points[0], atol=1e-3)
