"""Synthetic group canvases: deterministic, faces inside and apart, sizes in range, matching fair."""
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from keyface.data.crowd import (Canvas, CanvasSpec, Source, face_match, group_specs, make_canvas,
                                make_canvases, match_faces, video_specs)

FACE_BOX = (35.0, 25.0, 85.0, 95.0)  # where the drawn face lies in every synthetic photo
PEOPLE, PHOTOS_EACH = 8, 3


def _photo(person: int, photo: int) -> np.ndarray:
    """A 120x120 'photo': a flat backdrop and a face-like ellipse with two dark eyes, colours by who and which."""
    image = np.zeros((120, 120, 3), np.uint8)
    image[:] = (40 + 20 * photo, 90, 160 - 15 * person)
    skin = (150 + 12 * person, 110 + 10 * photo, 80)
    cv2.ellipse(image, (60, 60), (25, 35), 0, 0, 360, skin, -1)
    for eye_x in (50, 70):
        cv2.circle(image, (eye_x, 50), 4, (20, 20, 20), -1)
    cv2.line(image, (52, 78), (68, 78), (120, 30, 40), 3)
    return image


PHOTOS = {Path(f"person{p}/photo{n}.png"): _photo(p, n) for p in range(PEOPLE) for n in range(PHOTOS_EACH)}
SOURCES = [Source(path.parent.name, path, FACE_BOX) for path in PHOTOS]


def load(path: Path) -> np.ndarray:
    """The synthetic photo at path."""
    return PHOTOS[path]


def _canvas(seed: int = 0, **spec: object) -> Canvas:
    """A small canvas from the synthetic sources; spec overrides the defaults below."""
    fields = dict(width=640, height=480, faces=(6, 6), face_px=(30.0, 70.0))
    fields.update(spec)
    return make_canvas("test", CanvasSpec(**fields), SOURCES, np.random.default_rng(seed), load)


def _grown(box: tuple, factor: float) -> tuple:
    """box grown factor times about its centre."""
    cx, cy, half_w, half_h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return cx - factor * half_w, cy - factor * half_h, cx + factor * half_w, cy + factor * half_h


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_same_seed_same_canvas_other_seed_other_canvas():
    varied = dict(rotate_share=0.5, blur_share=0.5)
    first, again, other = _canvas(3, **varied), _canvas(3, **varied), _canvas(4, **varied)
    assert np.array_equal(first.image, again.image) and first.faces == again.faces
    assert first.jpeg_quality == again.jpeg_quality
    assert not np.array_equal(first.image, other.image)
    assert [f.box for f in first.faces] != [f.box for f in other.faces]


def test_make_canvases_cycles_specs_yields_lazily_and_each_canvas_ignores_count():
    made = make_canvases("video", 4, SOURCES, seed=7, load=load)
    assert not isinstance(made, list)
    canvases = list(made)
    assert [c.name for c in canvases] == ["video-640x480-000", "video-1280x720-001", "video-1920x1080-002",
                                          "video-640x480-003"]
    assert [c.image.shape for c in canvases] == [(480, 640, 3), (720, 1280, 3), (1080, 1920, 3), (480, 640, 3)]
    fewer = list(make_canvases("video", 2, SOURCES, seed=7, load=load))
    assert len(fewer) == 2 and all(np.array_equal(a.image, b.image) and a.faces == b.faces for a, b in zip(canvases, fewer))
    with pytest.raises(ValueError, match="kind"):
        next(make_canvases("crowd", 1, SOURCES, seed=7, load=load))


def test_specs_cover_the_asked_sizes():
    assert [(s.width, s.height) for s in group_specs()] == [(1600, 1200), (2400, 1600), (3000, 2000), (4000, 3000)]
    assert all(s.face_px == (20.0, 150.0) for s in group_specs())
    assert [(s.width, s.height) for s in video_specs()] == [(640, 480), (1280, 720), (1920, 1080)]
    assert all(s.faces == (1, 6) and s.face_px == (24.0, 200.0) for s in video_specs())


@pytest.mark.parametrize("seed", range(4))
def test_faces_lie_inside_the_canvas_and_crops_do_not_overlap(seed):
    canvas = _canvas(seed, width=500, height=400, faces=(12, 12), face_px=(25.0, 60.0), rotate_share=0.0)
    height, width = canvas.image.shape[:2]
    assert len(canvas.faces) >= 6
    for face in canvas.faces:
        assert 0 <= face.box[0] < face.box[2] <= width and 0 <= face.box[1] < face.box[3] <= height
    # unrotated crops are the face box grown 1.6x (give or take a pixel): those regions must be apart
    crops = [_grown(face.box, 1.55) for face in canvas.faces]
    assert not any(_overlap(a, b) for i, a in enumerate(crops) for b in crops[i + 1:])


def test_rotated_faces_stay_inside_and_apart_with_truth_of_the_same_size():
    canvas = _canvas(1, faces=(10, 10), rotate_share=1.0)
    assert all(face.rotation != 0 and abs(face.rotation) <= 25 for face in canvas.faces)
    for i, face in enumerate(canvas.faces):
        assert 0 <= face.box[0] and face.box[2] <= 640 and 0 <= face.box[1] and face.box[3] <= 480
        # the source box is 50x70, so the truth keeps a 7:5 height to width ratio whatever the angle
        assert (face.box[3] - face.box[1]) / face.size == pytest.approx(70 / 50)
        assert not any(_overlap(face.box, other.box) for other in canvas.faces[i + 1:])


def test_sizes_stay_within_the_spec_range_and_spread_across_it():
    sizes = [f.size for seed in range(6) for f in _canvas(seed, faces=(8, 8), face_px=(30.0, 70.0),
                                                          rotate_share=0.5).faces]
    assert len(sizes) >= 30
    assert min(sizes) >= 30.0 - 1e-6 and max(sizes) <= 70.0 + 1e-6
    assert min(sizes) < 38 and max(sizes) > 60


def test_each_source_once_and_distinct_people_first():
    canvas = _canvas(2, width=1000, height=800, faces=(PEOPLE, PEOPLE))
    assert len(canvas.faces) == PEOPLE
    assert len({f.person for f in canvas.faces}) == PEOPLE
    more = _canvas(2, width=1200, height=1000, faces=(PEOPLE + 4, PEOPLE + 4), face_px=(20.0, 40.0))
    assert len(more.faces) == PEOPLE + 4
    assert len({f.photo for f in more.faces}) == PEOPLE + 4 and len({f.person for f in more.faces}) == PEOPLE
    too_many = _canvas(2, width=2000, height=1500, faces=(100, 100), face_px=(20.0, 30.0))
    assert len(too_many.faces) == len(SOURCES)


def test_a_canvas_too_small_pastes_fewer_faces_and_returns():
    started = time.perf_counter()
    crowded = _canvas(0, width=220, height=160, faces=(40, 40), face_px=(40.0, 60.0))
    assert 1 <= len(crowded.faces) < 10
    none_fit = _canvas(0, width=60, height=60, faces=(5, 5), face_px=(80.0, 100.0))
    assert none_fit.faces == [] and none_fit.image.shape == (60, 60, 3)
    assert time.perf_counter() - started < 5  # bounded tries: never a long search


def test_jpeg_share_zero_keeps_pixels_and_one_round_trips_them():
    plain, jpeg = _canvas(5, jpeg_share=0.0), _canvas(5, jpeg_share=1.0)
    assert plain.jpeg_quality is None
    assert 40 <= jpeg.jpeg_quality <= 85
    assert plain.faces == jpeg.faces  # the JPEG draw comes last: same faces, only the encoding differs
    difference = np.abs(plain.image.astype(int) - jpeg.image.astype(int))
    assert 0 < difference.mean() < 8


def test_a_pasted_face_shows_the_source_pixels():
    canvas = _canvas(6, faces=(1, 1), face_px=(100.0, 100.0), rotate_share=0.0, blur_share=0.0, jpeg_share=0.0)
    (face,) = canvas.faces
    assert face.size == pytest.approx(100.0) and not face.blurred
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    seen = canvas.image[y0:y1, x0:x1].astype(np.float32)
    bx0, by0, bx1, by1 = (int(v) for v in FACE_BOX)
    expected = cv2.resize(load(face.photo)[by0:by1, bx0:bx1], (x1 - x0, y1 - y0),
                          interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(seen.mean(axis=(0, 1)) - expected.mean(axis=(0, 1))).max() < 6
    assert np.corrcoef(seen.ravel(), expected.ravel())[0, 1] > 0.9
    # the crop reaches 0.3 face widths left of the box: solid 10 px in, feathered into the canvas at its edge
    backdrop = load(face.photo)[by0, bx0 - 5].astype(int)
    solid, edge, outside = (canvas.image[y0, x0 - d].astype(int) for d in (10, 29, 32))
    assert np.abs(solid - backdrop).max() <= 3
    assert np.abs(edge - outside).sum() < np.abs(edge - backdrop).sum()


def test_a_rotated_face_is_turned_about_its_box_centre():
    canvas = _canvas(9, faces=(1, 1), face_px=(100.0, 100.0), rotate_share=1.0, blur_share=0.0, jpeg_share=0.0)
    (face,) = canvas.faces
    assert abs(face.rotation) > 2
    # the source turned by the same angle about its face centre, then the middle 60% of the box from each
    source = cv2.warpAffine(load(face.photo), cv2.getRotationMatrix2D((59.5, 59.5), face.rotation, 1.0), (120, 120))
    sx0, sy0, sx1, sy1 = (int(round(v)) for v in _grown(FACE_BOX, 0.6))
    x0, y0, x1, y1 = (int(round(v)) for v in _grown(face.box, 0.6))
    seen = canvas.image[y0:y1, x0:x1].astype(np.float32)
    expected = cv2.resize(source[sy0:sy1, sx0:sx1], (x1 - x0, y1 - y0)).astype(np.float32)
    assert np.corrcoef(seen.ravel(), expected.ravel())[0, 1] > 0.9


def test_face_match_accepts_other_conventions_and_refuses_far_boxes():
    truth = (100.0, 100.0, 200.0, 220.0)  # 100 wide, centre (150, 160)
    taller = (100.0, 100.0 - 12, 200.0, 220.0 + 12)  # 1.2x taller about the same centre
    assert face_match(truth, taller)
    assert face_match(truth, (110.0, 125.0, 200.0, 215.0))  # smaller, a little off centre
    assert not face_match(truth, (100.0 + 70, 100.0, 200.0 + 70, 220.0))  # centre 0.7 widths away: twice the limit
    assert not face_match(truth, (100.0, 100.0 + 70, 200.0, 220.0 + 70))
    assert not face_match(truth, (50.0, 60.0, 260.0, 260.0))  # 2.1x as wide
    assert not face_match(truth, (130.0, 140.0, 170.0, 180.0))  # 0.4x as wide


def test_match_faces_is_one_to_one_closest_first():
    truth = [(100.0, 100.0, 200.0, 200.0), (400.0, 100.0, 480.0, 180.0), (700.0, 700.0, 760.0, 760.0)]
    found = [(105.0, 100.0, 205.0, 200.0),  # on face 0, 5 px off
             (100.0, 101.0, 200.0, 201.0),  # on face 0, 1 px off: the closer one wins
             (402.0, 98.0, 482.0, 178.0),  # face 1
             (0.0, 600.0, 50.0, 650.0)]  # nothing there
    matched, false = match_faces(truth, found)
    assert matched == [1, 2, None]
    assert false == [0, 3]
    # one box between two nearby faces goes to the closer one only
    close = [(100.0, 100.0, 200.0, 200.0), (125.0, 100.0, 225.0, 200.0)]
    assert match_faces(close, [(118.0, 100.0, 218.0, 200.0)]) == ([None, 0], [])
    assert match_faces([], found) == ([], [0, 1, 2, 3])
    assert match_faces(truth, []) == ([None, None, None], [])


def test_big_background_is_quick_and_not_flat():
    spec = CanvasSpec(4000, 3000, (0, 0), (20.0, 150.0), jpeg_share=0.0)
    started = time.perf_counter()
    canvas = make_canvas("empty", spec, SOURCES, np.random.default_rng(0), load)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0  # loose on purpose (shared machines); typically a few hundredths of a second
    assert canvas.image.shape == (3000, 4000, 3) and canvas.image.dtype == np.uint8 and canvas.faces == []
    small = canvas.image[::10, ::10].astype(np.float32)
    assert small.std(axis=(0, 1)).min() > 5  # varies in every channel
    tiles = small.reshape(6, 50, 8, 50, 3).mean(axis=(1, 3))
    assert np.ptp(tiles, axis=(0, 1)).max() > 15  # and from place to place, not just pixel noise
    other = make_canvas("empty", spec, SOURCES, np.random.default_rng(1), load)
    assert np.abs(other.image[::10, ::10].astype(int) - small).mean() > 10


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        CanvasSpec(100, 100, (5, 2), (20.0, 30.0))
    with pytest.raises(ValueError):
        CanvasSpec(100, 100, (1, 2), (0.0, 30.0))
    with pytest.raises(ValueError, match="share"):
        CanvasSpec(100, 100, (1, 2), (10.0, 30.0), jpeg_share=1.5)
    empty_box = [Source("x", next(iter(PHOTOS)), (50.0, 50.0, 50.0, 80.0))]
    with pytest.raises(ValueError, match="empty"):
        make_canvas("bad", CanvasSpec(300, 300, (1, 1), (30.0, 40.0)), empty_box, np.random.default_rng(0), load)


def test_best_cut_is_the_cut_that_makes_most_faces_right():
    from keyface.recognition.evaluation.crowd import best_cut
    # (distance to nearest person, that person is the face's name, the face is a stranger's)
    faces = [(0.02, True, False), (0.04, True, False), (0.05, False, True), (0.06, False, False), (0.08, False, True)]
    # at 0.04 the first two are named right and both strangers stay unknown: 4 of 5; any higher cut names a
    # stranger, any lower leaves a colleague unknown
    assert best_cut(faces) == {"cut": 0.04, "right_of_found": 0.8}
    assert best_cut([(0.05, False, True)]) == {"cut": 0.0, "right_of_found": 1.0}
    assert best_cut([]) == {"cut": None, "right_of_found": None}
