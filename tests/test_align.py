"""Alignment: a face moved by a known similarity transform comes back onto the template."""
import cv2
import numpy as np
import pytest

from keyface.keypoints.predictor import IBUG68, align_face, alignment_matrix, similarity_transform, template


def known_similarity(angle_deg: float, scale: float, shift) -> np.ndarray:
    """A 2x3 similarity matrix from its parameters."""
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]],
                     [scale * np.sin(a), scale * np.cos(a), shift[1]]])


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle, scale, shift", [(0, 1, (0, 0)), (25, 2.3, (140, 60)), (-40, 0.7, (30, 200))])
def test_similarity_is_recovered_exactly(angle, scale, shift):
    src = template(112)
    m = known_similarity(angle, scale, shift)
    assert np.allclose(similarity_transform(src, apply(m, src)), m, atol=1e-9)


def test_warped_face_comes_back_to_the_template():
    size = 112
    photo_from_crop = known_similarity(30, 2.0, (150, 40))
    anchors = apply(photo_from_crop, template(size))
    photo = np.zeros((400, 400), np.uint8)
    for x, y in anchors:
        cv2.circle(photo, (int(round(x)), int(round(y))), 4, 255, -1)
    crop = align_face(photo, anchors, size)
    for tx, ty in template(size):
        patch = crop[int(ty) - 3:int(ty) + 4, int(tx) - 3:int(tx) + 4]
        assert patch.max() > 200  # each dot landed where the template says
    assert crop.mean() < 40  # and nothing else did


def test_zoom_shrinks_the_template_about_the_centre():
    wide = template(112, zoom=0.5)
    assert np.allclose(wide.mean(0) - 56, (template(112).mean(0) - 56) * 0.5)
    assert np.ptp(wide[:, 0]) == pytest.approx(np.ptp(template(112)[:, 0]) * 0.5)


def test_anchors_from_68_points_align_a_real_face(youtube_sample):
    from keyface.data.images import load_image
    path, points = youtube_sample[0]
    anchors = IBUG68.anchor_points(points)
    m = alignment_matrix(anchors, 112)
    moved = apply(m, anchors)
    assert np.abs(moved - template(112)).max() < 8  # a real face fits the template to a few pixels
    assert align_face(load_image(path), anchors, 112).shape == (112, 112, 3)
