"""The composable verbs of the Python API (face_locations, face_landmarks, face_encodings, face_distance,
compare_faces) and verify/enrol's options, on the shipped LFW demo photos and a two-face canvas."""
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import keyface
from keyface.data.images import load_image
from keyface.recognition.cli.demo import demo_root

GALLERY = demo_root() / "gallery"
TOM = [GALLERY / "Tom Cruise" / f"Tom_Cruise_000{i}.jpg" for i in range(1, 6)]
NANCY = GALLERY / "Nancy Pelosi" / "Nancy_Pelosi_0001.jpg"
CROWDED = demo_root() / "probes" / "Gordon_Brown_0006.jpg"  # one face and two smaller ones behind
SPLIT = 170  # the canvas's x where Tom's photo starts


@pytest.fixture(scope="module")
def recogniser():
    """The default, shared recogniser (dlib-resnet)."""
    return keyface.load()


@pytest.fixture(scope="module")
def canvas() -> np.ndarray:
    """Two people side by side: Nancy Pelosi shrunk to 160 px on the left (her face ~60 px wide), Tom Cruise
    at 250 px on the right (~100 px): two rival faces, the larger one on the right."""
    import cv2
    small = cv2.resize(load_image(NANCY), (160, 160), interpolation=cv2.INTER_AREA)
    image = np.full((250, SPLIT + 250, 3), 128, np.uint8)
    image[45:205, :160] = small
    image[:, SPLIT:] = load_image(TOM[0])
    return image


def width(box) -> float:
    return box[2] - box[0]


def test_importing_keyface_loads_no_model_and_exports_the_verbs():
    code = ("import sys, keyface; print(sorted({'tensorflow', 'keras'} & set(sys.modules)), len(keyface.recognition.facade._LOADED), "
            "all(hasattr(keyface, n) for n in keyface.__all__), keyface.build is keyface.api.build)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "0", "True", "True"]
    verbs = {"build", "face_locations", "face_landmarks", "face_encodings", "face_distance", "compare_faces"}
    assert verbs <= set(keyface.__all__)
    import inspect
    from keyface.data import errors
    kinds = {name for name, kind in inspect.getmembers(errors, inspect.isclass) if issubclass(kind, errors.KeyfaceError)}
    assert "VideoError" in kinds and kinds <= set(keyface.__all__)  # every error the verbs raise, caught by name


def test_face_locations_gives_boxes_left_to_right_and_max_num_keeps_the_largest(canvas, recogniser):
    boxes = keyface.face_locations(canvas, recogniser=recogniser)
    assert len(boxes) == 2 and all(len(b) == 4 and all(isinstance(v, float) for v in b) for b in boxes)
    left, right = boxes
    assert left[2] < SPLIT < right[0]  # Nancy's face, then Tom's
    assert width(left) < width(right)
    assert keyface.face_locations(canvas, max_num=1) == [right]
    assert keyface.face_locations(canvas, max_num=5) == boxes
    with pytest.raises(keyface.KeyfaceError, match="max_num"):
        keyface.face_locations(canvas, max_num=-1)


def test_a_face_cut_by_the_edge_is_boxed_to_the_edge_everywhere(recogniser, tmp_path, capsys):
    """Tom's face with its top third cut off: the detector's box reaches above the photo; what every output
    reports is the part inside, so that a crop by it (rgb[y0:y1]) is the face, not a wrapped-around slice."""
    from keyface.recognition.cli.main import main
    rgb = np.ascontiguousarray(load_image(demo_root() / "probes" / "Tom_Cruise_0006.jpg")[100:, 20:])
    (box,), (face,) = keyface.face_locations(rgb), keyface.find_faces(rgb)
    assert box == face.box and box[1] == 0.0 and 100 < box[2] - box[0] and box[3] <= rgb.shape[0]
    import PIL.Image
    PIL.Image.fromarray(rgb).save(tmp_path / "cut.png")
    assert main(["keypoints", str(tmp_path / "cut.png"), "--json"]) == 0
    import json
    (shown,) = json.loads(capsys.readouterr().out.splitlines()[-1])["faces"]
    assert shown["box"][1] == 0.0 and min(shown["box"]) >= 0


def test_face_locations_min_score_drops_lower_scoring_boxes(canvas, recogniser):
    found = recogniser.pipeline.detector.detect(canvas)
    scores = sorted(f.score for f in found)
    assert len(scores) == 2 and scores[0] < scores[1]
    cut = (scores[0] + scores[1]) / 2
    best = max(found, key=lambda f: f.score)
    assert keyface.face_locations(canvas, min_score=cut) == [tuple(float(v) for v in best.box)]
    assert keyface.face_locations(canvas, min_score=scores[1] + 1e-3) == []
    assert len(keyface.face_locations(canvas, min_score=0.0)) == 2


def test_face_locations_min_face_uses_a_kept_detector_of_that_size(canvas, recogniser):
    from keyface.api import _DETECTORS
    boxes = keyface.face_locations(canvas, min_face=120)  # faces under 0.7 x 120 px are not looked for
    assert len(boxes) == 1 and boxes[0][0] > SPLIT
    kept = _DETECTORS[(recogniser.pipeline.detector.name, 120.0)]
    keyface.face_locations(canvas, min_face=120)
    assert _DETECTORS[(recogniser.pipeline.detector.name, 120.0)] is kept
    assert recogniser.pipeline.detector.min_face == 24  # the shared recogniser's own is untouched
    with pytest.raises(keyface.KeyfaceError, match="8 or more"):
        keyface.face_locations(canvas, min_face=4)


def test_face_landmarks_name_the_regions_as_face_recognition_does(canvas):
    faces = keyface.face_landmarks(canvas)
    assert len(faces) == 2
    counts = {"chin": 17, "jaw": 17, "left_eyebrow": 5, "right_eyebrow": 5, "nose_bridge": 4, "nose_tip": 5,
              "left_eye": 6, "right_eye": 6, "top_lip": 12, "bottom_lip": 12, "all": 68}
    for regions in faces:
        assert {k: len(v) for k, v in regions.items()} == counts
        regions = dict(regions)
        everything = regions.pop("all")
        assert everything.shape == (68, 2)
        # lists of (x, y), as face_recognition's: its drawing example closes an eye by `eye + [eye[0]]`
        assert all(type(v) is list and all(type(p) is tuple and len(p) == 2 for p in v) for v in regions.values())
        eye = regions["left_eye"]
        assert eye + [eye[0]] == [*map(tuple, everything[36:42].tolist()), tuple(everything[36].tolist())]
        regions = {k: np.asarray(v) for k, v in regions.items()}
        np.testing.assert_array_equal(regions["chin"], everything[:17])
        np.testing.assert_array_equal(regions["top_lip"][[0, 6, 7, 11]], everything[[48, 54, 64, 60]])
        np.testing.assert_array_equal(regions["bottom_lip"][[0, 6, 7, 11]], everything[[54, 48, 60, 64]])
        # left and right as seen in the image
        assert regions["left_eye"][:, 0].mean() < regions["right_eye"][:, 0].mean()
        assert regions["left_eyebrow"][:, 0].mean() < regions["right_eyebrow"][:, 0].mean()
        heights = [regions[k][:, 1].mean() for k in ("nose_bridge", "nose_tip", "bottom_lip")]
        assert heights == sorted(heights)  # top to bottom
    assert faces[0]["all"][:, 0].mean() < SPLIT < faces[1]["all"][:, 0].mean()


def test_face_landmarks_for_given_boxes_are_find_faces_keypoints(canvas):
    found = keyface.find_faces(canvas)
    given = keyface.face_landmarks(canvas, boxes=[f.box for f in reversed(found)])
    assert len(given) == 2
    for regions, face in zip(given, reversed(found)):  # in the order of the boxes given
        np.testing.assert_allclose(regions["all"], face.keypoints, atol=1e-4)
    with pytest.raises(keyface.KeyfaceError, match="x0 < x1"):
        keyface.face_landmarks(canvas, boxes=[(50, 50, 40, 90)])
    with pytest.raises(keyface.KeyfaceError, match="boxes"):
        keyface.face_landmarks(canvas, boxes=[(1, 2, 3)])


def test_face_encodings_for_given_boxes_are_find_faces_embeddings():
    found = keyface.find_faces(CROWDED)
    assert len(found) == 3
    expected = np.stack([f.embedding for f in found])
    boxes = [f.box for f in found]
    np.testing.assert_allclose(keyface.face_encodings(CROWDED, boxes=boxes), expected, atol=1e-5)
    np.testing.assert_allclose(keyface.face_encodings(CROWDED), expected, atol=1e-5)
    np.testing.assert_allclose(keyface.face_encodings(CROWDED, boxes=boxes[::-1]), expected[::-1], atol=1e-5)
    np.testing.assert_allclose(keyface.face_encodings(CROWDED, boxes=(b for b in boxes)), expected, atol=1e-5)
    one = keyface.face_encodings(CROWDED, boxes=boxes[1])  # a single box
    np.testing.assert_allclose(one, expected[1:2], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-5)
    assert keyface.face_encodings(np.full((120, 120, 3), 128, np.uint8)).shape == (0, expected.shape[1])


@pytest.fixture(scope="module")
def embeddings():
    """Two photos of Tom Cruise and one of Nancy Pelosi, embedded."""
    return [keyface.face_encodings(photo)[0] for photo in (TOM[0], TOM[1], NANCY)]


def test_face_distance_is_cosine_distance_and_ranks_the_same_person_nearer(embeddings):
    tom1, tom2, nancy = embeddings
    distances = keyface.face_distance(np.stack([tom1, nancy]), tom2)
    assert distances.shape == (2,)
    assert 0 <= distances[0] < distances[1] <= 2
    np.testing.assert_allclose(distances, [1 - tom1 @ tom2, 1 - nancy @ tom2], atol=1e-6)
    np.testing.assert_allclose(keyface.face_distance([3 * tom1, 0.2 * nancy], 7 * tom2), distances, atol=1e-6)
    _, verified = keyface.verify(TOM[0], TOM[1])
    assert distances[0] == pytest.approx(verified, abs=1e-5)
    assert keyface.face_distance(np.zeros((0, tom1.size)), tom2).shape == (0,)
    assert keyface.face_distance([], tom2).shape == (0,)
    with pytest.raises(keyface.KeyfaceError, match="like the candidate"):
        keyface.face_distance([tom1[:5]], tom2)
    with pytest.raises(keyface.KeyfaceError, match="zeros"):
        keyface.face_distance([tom1], np.zeros_like(tom2))


def test_compare_faces_cuts_at_the_calibrated_threshold_or_the_tolerance(embeddings, recogniser):
    tom1, tom2, nancy = embeddings
    known = [tom1, nancy]
    same, other = keyface.face_distance(known, tom2)
    assert same < recogniser.threshold < other  # so that the default cut decides
    assert keyface.compare_faces(known, tom2) == [True, False]
    assert keyface.compare_faces(known, tom2, tolerance=0.0) == [False, False]
    assert keyface.compare_faces(known, tom2, tolerance=2.0) == [True, True]
    assert keyface.compare_faces(known, tom2, tolerance=same - 1e-4) == [False, False]
    assert keyface.compare_faces([], tom2) == []
    loose = SimpleNamespace(threshold=0.5, identify_threshold=0.0, embedder=recogniser.embedder)
    assert keyface.compare_faces(known, tom2, recogniser=loose) == [True, True]  # verify's cut, not identify's
    with pytest.raises(keyface.KeyfaceError, match="tolerance"):
        keyface.compare_faces(known, tom2, tolerance="close")


def test_a_face_recognition_tolerance_is_warned_of(embeddings, caplog):
    tom1, tom2, nancy = embeddings
    with caplog.at_level("WARNING", logger="keyface.api"):
        assert keyface.compare_faces([tom1, nancy], tom2, tolerance=0.18) == [True, False]  # 0.6 in theirs
    assert caplog.records == []
    with caplog.at_level("WARNING", logger="keyface.api"):
        assert keyface.compare_faces([tom1, nancy], tom2, tolerance=0.6) == [True, True]
        keyface.compare_faces([tom1, nancy], tom2, tolerance=0.6)  # a loop over frames: said once
    assert "t * t / 2 here (0.6: 0.18)" in caplog.text and len(caplog.records) == 1
    with pytest.raises(keyface.KeyfaceError, match="give the recogniser that made them"):
        keyface.compare_faces([tom1[:5]], tom2[:5])


def test_verify_can_take_the_largest_face_and_a_threshold(canvas, recogniser, caplog):
    with pytest.raises(keyface.KeyfaceError, match="2 faces found"):
        keyface.verify(canvas, TOM[1])
    with caplog.at_level("INFO", logger="keyface.recognition.core.pipeline"):
        same, distance = keyface.verify(canvas, TOM[1], largest_face=True)  # Tom's face is the larger
    assert same and distance < recogniser.threshold
    said = [r for r in caplog.records if "using the largest" in r.getMessage()]
    assert said and said[0].levelname == "INFO" and "face 2 from the left" in said[0].getMessage()
    import cv2  # two faces of nearly one size: which one is meant is said as a warning
    pair = np.concatenate([load_image(TOM[0]), cv2.resize(load_image(NANCY), (240, 250))], axis=1)
    caplog.clear()
    keyface.verify(pair, TOM[1], largest_face=True)
    assert any(r.levelname == "WARNING" and "check it is the one meant" in r.getMessage() for r in caplog.records)
    assert recogniser.several_faces == "refuse"  # the shared recogniser is not changed
    same, distance = keyface.verify(TOM[3], TOM[1])
    assert same
    assert keyface.verify(TOM[3], TOM[1], threshold=0) == (False, distance)
    assert keyface.verify(TOM[3], TOM[1], threshold=distance + 1e-6) == (True, distance)
    with pytest.raises(keyface.KeyfaceError, match="is a folder, not a photo"):
        keyface.verify(GALLERY, TOM[1])


def test_gallery_enrols_the_largest_face_on_request_and_refuses_a_folder_to_identify(tmp_path, recogniser):
    crowded = TOM[2]  # Tom Cruise and someone else nearly his size
    with keyface.Gallery(tmp_path / "g.db") as gallery:
        added, errors = gallery.enrol("Tom", [crowded])
        assert added == 0 and isinstance(errors[0], keyface.SeveralFacesError) and "2 faces found" in str(errors[0])
        assert gallery.enrol("Tom", [crowded], largest_face=True) == (1, [])
        assert recogniser.several_faces == "refuse"
        assert gallery.people() == {"Tom": 1}
        with pytest.raises(keyface.KeyfaceError, match="is a folder: enrol"):
            gallery.enrol("Tom", GALLERY / "Tom Cruise")
        added, errors = gallery.enrol("Tom", [GALLERY / "Tom Cruise", TOM[1]])  # a folder among them: its own error
        assert added == 1 and len(errors) == 1 and isinstance(errors[0], keyface.ImageError)
        assert "is a folder, not a photo" in str(errors[0])
        with pytest.raises(keyface.KeyfaceError, match="is a folder, not a photo: loop over its images"):
            gallery.identify(GALLERY / "Tom Cruise")
        with pytest.raises(keyface.KeyfaceError, match="no such file"):
            gallery.identify(tmp_path / "missing.jpg")


def test_a_face_repr_is_one_short_line(canvas):
    face = keyface.Face((12.0, 30.5, 80.2, 110.0), 0.9, np.zeros((68, 2)), embedding=np.zeros(128), name="Ada",
                        matches=(("Ada", 0.0314159),))
    assert repr(face) == "Face(box=(12.0, 30.5, 80.2, 110.0), name='Ada', distance=0.031)"
    assert keyface.FoundFace is keyface.Face  # the name 0.1 gave it
    for found in keyface.find_faces(canvas):
        shown = repr(found)
        assert "\n" not in shown and len(shown) < 100 and shown.startswith("Face(box=(")
        assert str(found) == shown
    assert repr(keyface.load()) == (f"Recogniser(embedder='dlib-resnet', version='{keyface.load().embedder.version}', "
                                    "detector=BlazeFaceDetector, several_faces='refuse')")



def test_faces_go_in_sets_and_lists_and_equal_only_themselves():
    one = keyface.Face((1.0, 2.0, 30.0, 40.0), 0.9, np.zeros((68, 2)), embedding=np.ones(4))
    twin = keyface.Face((1.0, 2.0, 30.0, 40.0), 0.9, np.zeros((68, 2)), embedding=np.ones(4))
    assert one == one and one != twin and twin not in [one]  # numpy fields: compared, they would raise
    assert len({one, twin, one}) == 2 and {one: "Ada"}[one] == "Ada"

def _pixels_of(image: np.ndarray, colour) -> int:
    return int(np.all(image == np.array(colour, np.uint8), axis=-1).sum())


def test_draw_faces_draws_on_a_copy_numbers_found_faces_and_colours_named_ones(canvas, tmp_path, recogniser):
    found_blue, known_green, unknown_red = (40, 110, 220), (40, 180, 40), (220, 40, 40)
    before = canvas.copy()
    found = keyface.draw_faces(canvas, keyface.find_faces(canvas))
    assert found.shape == canvas.shape and found.dtype == np.uint8 and np.array_equal(canvas, before)
    assert _pixels_of(before, found_blue) == 0 and _pixels_of(found, found_blue) > 100  # both faces, not yet named
    assert _pixels_of(found, known_green) == _pixels_of(found, unknown_red) == 0
    with keyface.Gallery(tmp_path / "g.db") as gallery:
        gallery.enrol("Tom", TOM[1:3], largest_face=True)
        named = keyface.draw_faces(canvas, gallery.identify(canvas))  # Tom on the right, Nancy unknown
    assert _pixels_of(named, known_green) > 50 and _pixels_of(named, unknown_red) > 50
    assert _pixels_of(named, found_blue) == 0
    untouched = keyface.draw_faces(canvas, [])
    assert np.array_equal(untouched, canvas) and untouched is not canvas
    with pytest.raises(keyface.KeyfaceError, match="takes the faces find_faces"):
        keyface.draw_faces(canvas, [(10.0, 10.0, 50.0, 50.0)])


def test_in_order_yields_in_the_order_given_with_errors_in_place_and_takes_few_ahead():
    import threading
    import time
    from keyface.recognition.core.pipeline import in_order
    taken, lock = [], threading.Lock()

    def items():
        for i in range(12):
            with lock:
                taken.append(i)
            yield i

    def work(i):
        time.sleep(0.02 * ((7 * i) % 5))  # later items often finish first
        if i == 4:
            raise keyface.NoFaceError("four: no face found")
        return i * i
    results = in_order(work, items(), workers=3)
    first = next(results)
    assert first == (0, 0) and len(taken) <= 7  # at most 2 x workers taken before the first comes back
    rest = list(results)
    assert [i for i, _ in rest] == list(range(1, 12))
    assert isinstance(rest[3][1], keyface.NoFaceError) and [r for i, r in rest if i != 4] == [i * i for i in range(1, 12) if i != 4]
    assert list(in_order(work, [2, 4], workers=1))[0] == (2, 4)

    def broken(i):
        raise ValueError("a bug, not a bad photo")
    with pytest.raises(ValueError, match="a bug"):
        list(in_order(broken, range(3), workers=2))


def test_gallery_identify_all_gives_each_photo_what_identify_gives_in_order(tmp_path, recogniser):
    grey = np.full((200, 200, 3), 128, np.uint8)
    photos = [TOM[3], tmp_path / "missing.jpg", grey, GALLERY, NANCY, TOM[4]]
    with keyface.Gallery(tmp_path / "g.db", recogniser) as gallery:
        gallery.enrol("Tom", TOM[:3], largest_face=True)
        together = list(gallery.identify_all(photos, workers=3))
        assert all(given is photo for (given, _), photo in zip(together, photos)) and len(together) == len(photos)
        assert isinstance(together[1][1], keyface.KeyfaceError) and "no such file" in str(together[1][1])
        assert together[2][1] == []  # no face is no error: an empty list, as identify gives
        assert isinstance(together[3][1], keyface.KeyfaceError) and "is a folder" in str(together[3][1])
        for i in (0, 4, 5):
            alone = gallery.identify(photos[i])
            assert [(f.name, f.box) for f in together[i][1]] == [(f.name, f.box) for f in alone]
            assert np.allclose([f.distance for f in together[i][1]], [f.distance for f in alone])
        assert together[0][1][0].name == "Tom" and together[4][1][0].name is None


def test_in_order_stopped_early_drops_the_photos_not_yet_started():
    import threading
    import time
    from keyface.recognition.core.pipeline import in_order
    started, lock = [], threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.3)
        return i
    results = in_order(work, range(20), workers=2)
    assert next(results) == (0, 0)
    begun = time.perf_counter()
    results.close()  # the caller stops: queued photos are cancelled, the two running ones end on their own
    assert time.perf_counter() - begun < 0.25
    time.sleep(0.8)
    assert len(started) <= 5  # 0, the two running when it stopped, at most two more taken ahead: never all 20


def test_a_gallery_opened_without_a_recogniser_loads_one_for_all_threads(tmp_path, recogniser, monkeypatch):
    from keyface.recognition import facade
    with keyface.Gallery(tmp_path / "g.db", recogniser) as gallery:
        gallery.enrol("Tom", TOM[:2], largest_face=True)
    builds = []
    real_build = facade.build
    monkeypatch.setattr(facade._LOADED, "kept", {})
    monkeypatch.setattr(facade, "build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    with keyface.Gallery(tmp_path / "g.db") as gallery:
        named = [faces[0].name for _, faces in gallery.identify_all(TOM[2:5], workers=3)]
    assert len(builds) == 1 and named.count("Tom") >= 2


def test_photo_workers_share_the_cores_and_never_outnumber_the_photos(monkeypatch):
    from types import SimpleNamespace as Args
    from keyface.recognition.cli.commands import MAX_DEFAULT_WORKERS, photo_workers
    from keyface.runtime import networks
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setitem(networks._threads, "n", 0)  # as a fresh process has it, whatever a test before set
    assert photo_workers(Args(workers=None), 1) == 1 and networks.cpu_threads() == 8  # one photo: every core
    assert photo_workers(Args(workers=None), 100) == MAX_DEFAULT_WORKERS and networks.cpu_threads() == 8 // MAX_DEFAULT_WORKERS
    assert photo_workers(Args(workers=None), 2) == 2 and networks.cpu_threads() == 4
    assert photo_workers(Args(workers=3), 2) == 2 and photo_workers(Args(workers=16), 40) == 16
    assert networks.cpu_threads() == 1


def test_find_faces_all_gives_each_photo_what_find_faces_gives_in_order(canvas, tmp_path, recogniser):
    photos = [canvas, tmp_path / "missing.jpg", TOM[0], GALLERY]
    found = list(keyface.find_faces_all(photos, workers=3))
    assert [photo is given for (photo, _), given in zip(found, photos)] == [True] * 4
    assert isinstance(found[1][1], keyface.KeyfaceError) and "no such file" in str(found[1][1])
    assert isinstance(found[3][1], keyface.KeyfaceError) and "is a folder" in str(found[3][1])
    for i in (0, 2):
        alone = keyface.find_faces(photos[i])
        assert [f.box for f in found[i][1]] == [f.box for f in alone]
        assert np.allclose(np.stack([f.embedding for f in found[i][1]]), np.stack([f.embedding for f in alone]), atol=1e-6)
    assert len(found[0][1]) == 2


def test_wrong_arguments_are_keyface_errors_that_say_what_is_wanted(tmp_path, canvas, recogniser):
    """What a caller may get wrong: a KeyfaceError naming what was wanted, never a bare TypeError."""
    from keyface.data.video import Sampling
    wrong = {
        "a gallery is a file's path": lambda: keyface.Gallery(None),
        "recogniser is one made by keyface.load": lambda: keyface.Gallery(tmp_path / "g.db", 42),
        "min_face must be a number of pixels": lambda: keyface.load(min_face="x"),
        "workers is how many photos": lambda: list(keyface.find_faces_all([canvas], recogniser, workers=-1)),
        "max_num is how many of the largest faces": lambda: keyface.face_locations(canvas, max_num=-1),
        "lies mostly outside the 420x250 photo": lambda: keyface.face_encodings(canvas, [(500, 10, 560, 70)], recogniser),
        "box \\[-50.0, -50.0, 10.0, 10.0\\] lies mostly outside": lambda: keyface.face_encodings(
            canvas, [(-50, -50, 10, 10)], recogniser),
        "look like face_recognition's": lambda: keyface.face_encodings(canvas, [(40, 330, 200, 210)], recogniser),
        "a box under 8 px a side": lambda: keyface.face_encodings(canvas, [(10, 10, 11, 11)], recogniser),
        "a video is a file's path or a camera's index": lambda: list(keyface.identify_video([1], tmp_path / "g.db")),
        "is a folder: give a video file": lambda: list(keyface.identify_video(tmp_path, tmp_path / "g.db")),
        "fps must be above 0": lambda: Sampling(fps=0),
        "every is a count of frames": lambda: Sampling(every=0.5),
        "give every or fps, not both": lambda: Sampling(every=2, fps=5),
        "end 1 must come after start 2": lambda: Sampling(start=2, end=1),
    }
    with keyface.Gallery(tmp_path / "g.db", recogniser) as gallery:
        gallery.enrol("Tom", TOM[:1])
        wrong["workers is how many photos to work on at once, 1 or more, not 0"] = lambda: gallery.identify_all(
            [canvas], workers=0)
        for words, call in wrong.items():
            with pytest.raises(keyface.KeyfaceError, match=words):
                call()


def test_a_recogniser_may_be_named_and_one_face_drawn_alone(tmp_path, canvas, recogniser):
    with keyface.Gallery(tmp_path / "g.db", "dlib-resnet") as gallery:  # the shared one, loaded by name
        assert gallery.recogniser is recogniser
    face = keyface.find_faces(canvas, "dlib-resnet")[1]
    drawn = keyface.draw_faces(canvas, face)
    assert np.array_equal(drawn, keyface.draw_faces(canvas, [face])) and not np.array_equal(drawn, canvas)


def test_photos_made_ready_to_enrol_keep_a_thumbnail_not_their_pixels(recogniser):
    """A chunk of 32 large photos held whole would be gigabytes: only the face's thumbnail is kept."""
    big = np.ascontiguousarray(np.repeat(np.repeat(load_image(TOM[0]), 8, axis=0), 8, axis=1))  # 2000 x 2000
    prepared = recogniser.enrolments("Tom", [big, TOM[1]])
    assert [p.error for p in prepared] == [None, None]
    for p in prepared:
        assert p.thumbnail[:2] == b"\xff\xd8" and len(p.thumbnail) < 20_000  # a small JPEG
        assert not any(isinstance(v, np.ndarray) and v.size > 10_000 for v in p)
