"""Augmentation moves keypoints with the pixels: paint dots, transform, find the dots again."""
import cv2
import numpy as np
import pytest

from keyface.keypoints.augment import AugmentConfig, augment, flip_matrix, photometric, random_geometry, similarity_matrix, warp
from keyface.keypoints.predictor import IBUG68, KAGGLE15, crop_matrix, transform_points


def _dot(point, size: int) -> np.ndarray:
    """A black image with one bright dot at point."""
    img = np.zeros((size, size), np.uint8)
    cv2.circle(img, (int(round(point[0])), int(round(point[1]))), 2, 255, -1)
    return img


def _centroid(img: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid of an image (where its dot went)."""
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img.astype(np.float64)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


@pytest.mark.parametrize("seed", range(5))
def test_dots_follow_keypoints_through_random_geometry(seed):
    rng = np.random.default_rng(seed)
    pts = rng.integers(40, 120, (15, 2)).astype(np.float32)  # integers: dots are drawn exactly there
    cfg = AugmentConfig(rotate_deg=25, scale=(0.8, 1.2), shift=0.05)
    geo, flipped = random_geometry(rng, cfg, 96)
    matrix = geo @ crop_matrix(np.array([10, 10, 150, 150]), 96)
    moved = warp(np.zeros((160, 160), np.uint8), pts, matrix, 96, KAGGLE15, flipped)[1]
    # after a flip the points are permuted: keypoint k of the result is source point flip[k]
    source = list(KAGGLE15.flip) if flipped else list(range(15))
    for k, (x, y) in enumerate(moved):
        out = warp(_dot(pts[source[k]], 160), pts, matrix, 96)[0]
        assert out.sum() > 0, "the dot left the crop"
        assert np.hypot(*(_centroid(out) - (x, y))) < 0.3, (k, _centroid(out), (x, y))


def test_flip_swaps_left_and_right_points():
    pts = np.zeros((68, 2), np.float32)
    pts[36] = (30, 40)  # image-left eye corner
    pts[45] = (70, 40)
    _, moved = warp(np.zeros((100, 100), np.uint8), pts, flip_matrix(100), 100, IBUG68, flipped=True)
    # the mirrored image-left corner lands on the right; after the swap index 36 is image-left again
    assert moved[36, 0] < moved[45, 0]
    np.testing.assert_allclose(moved[36], (29, 40))
    np.testing.assert_allclose(moved[45], (69, 40))


def test_flip_without_scheme_is_refused():
    with pytest.raises(ValueError):
        warp(np.zeros((10, 10), np.uint8), np.zeros((1, 2)), flip_matrix(10), 10, None, flipped=True)


def test_transform_points_matches_matrix_and_keeps_nan():
    m = similarity_matrix((50, 50), 90, 1.0)
    out = transform_points(np.array([[60, 50], [np.nan, np.nan]], np.float32), m)
    np.testing.assert_allclose(out[0], (50, 40), atol=1e-4)  # 90 degrees counter-clockwise on screen
    assert np.isnan(out[1]).all()


def test_photometric_changes_pixels_not_shape():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    out = photometric(img, rng, AugmentConfig(blur_prob=1.0))
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_augment_keeps_points_on_face_and_is_seeded():
    img = np.full((120, 120), 128, np.uint8)
    pts = np.array([[40, 50], [80, 50]] * 34, np.float32)
    a = augment(img, pts, np.array([10, 10, 110, 110]), 64, IBUG68, np.random.default_rng(3), AugmentConfig())
    b = augment(img, pts, np.array([10, 10, 110, 110]), 64, IBUG68, np.random.default_rng(3), AugmentConfig())
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (64, 64) and np.all((a[1] > 0) & (a[1] < 64))


def test_augment_faces_jitters_each_face_on_its_own():
    """Identity crops: shape and labels kept, values in range, and faces of one batch moved differently."""
    import tensorflow as tf
    from keyface.recognition.training.face_sets import augment_faces
    tf.random.set_seed(3)
    gradient = np.tile(np.linspace(0, 255, 40, dtype=np.float32)[None, :, None], (40, 1, 3))
    batch = np.stack([gradient] * 16).astype(np.uint8)
    out, labels = augment_faces(batch, np.arange(16))
    out = out.numpy()
    assert out.shape == batch.shape and list(labels) == list(range(16))
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, batch)
    distinct = {tuple(np.round(face[20, :, 0]).astype(int)) for face in out}
    assert len(distinct) > 8  # per-face draws, not one shift and lighting for the whole batch
