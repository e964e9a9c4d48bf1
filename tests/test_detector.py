"""Face detectors: BlazeFace (the default) against MTCNN on real photos, its file check, caching per detector."""
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from keyface.data.errors import KeyfaceError
from keyface.data.files import STALE_TEMPORARY_S, write_whole
from keyface.data.images import load_image
from keyface.detection import detector as blazeface  # BlazeFace lives in detection.detector
from keyface.detection.detector import BlazeFaceDetector, Detection, box_iou, drop_nested, weighted_nms
from keyface.detection.cache import detect_cached, detection_cache_file
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR, make_detector

PROBES = Path(__file__).resolve().parent.parent / "recognition" / "demo" / "probes"


def _iou(a, b) -> float:
    return float(box_iou(a, b)[0, 0])


def test_blazeface_is_the_default_and_agrees_with_mtcnn_on_real_photos():
    assert DEFAULT_DETECTOR == "blazeface" and isinstance(make_detector(), BlazeFaceDetector)
    blaze, mtcnn = make_detector("blazeface"), make_detector("mtcnn")
    photos = sorted(PROBES.glob("*.jpg"))[:6]
    for photo in photos:
        rgb = load_image(photo)
        ours, theirs = blaze.detect(rgb), mtcnn.detect(rgb)
        assert ours and theirs, photo
        assert [f.box[0] for f in ours] == sorted(f.box[0] for f in ours)  # left to right, as faces are numbered
        assert [f.box[0] for f in theirs] == sorted(f.box[0] for f in theirs)
        largest = [max(found, key=lambda f: f.size) for found in (ours, theirs)]
        assert _iou(largest[0].box, largest[1].box) > 0.6, photo  # mapped onto MTCNN-like boxes
        assert ours[0].landmarks == () and 0.5 <= ours[0].score <= 1


def test_blazeface_finds_two_faces_side_by_side_and_none_in_a_blank_image():
    a, b = (load_image(p) for p in sorted(PROBES.glob("*.jpg"))[:2])
    pair = np.concatenate([a, b], axis=1)  # 250 x 500
    faces = BlazeFaceDetector().detect(pair)
    assert len(faces) == 2
    assert sorted(f.box[0] < 250 for f in faces) == [False, True]  # one face in each half
    assert BlazeFaceDetector().detect(np.full((300, 200, 3), 128, np.uint8)) == []


def test_a_tampered_model_file_is_refused(tmp_path):
    copy = tmp_path / "blazeface.tflite"
    shutil.copy(blazeface.MODEL_FILE, copy)
    assert blazeface.checked_model_file(copy) == copy
    data = bytearray(copy.read_bytes())
    data[1000] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(KeyfaceError, match="SHA-256 mismatch"):
        blazeface.checked_model_file(copy)
    with pytest.raises(KeyfaceError, match="unknown face detector 'nope'"):
        make_detector("nope")


def test_anchors_and_weighted_nms():
    anchors = blazeface.anchors()
    assert anchors.shape == (896, 2) and np.allclose(anchors[0], [1 / 32, 1 / 32]) and np.allclose(anchors[-1], [15 / 16] * 2)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kept = weighted_nms(boxes, np.array([0.9, 0.3, 0.8]), 0.3)
    assert len(kept) == 2 and kept[0][1] == pytest.approx(0.9)
    np.testing.assert_allclose(kept[0][0], [0.25, 0.25, 10.25, 10.25], atol=1e-5)  # 0.9 / 0.3 weighted mean


def test_a_box_inside_a_higher_scoring_one_is_dropped_as_the_same_face():
    inner, outer, beside = np.array([348, 81, 408, 163.]), np.array([320, 47, 413, 173.]), np.array([420, 81, 480, 163.])
    kept = drop_nested([(outer, 0.64), (inner, 0.94), (beside, 0.7)], 0.8)  # IoU 0.42: NMS at 0.3 keeps both
    assert [score for _, score in kept] == [0.94, 0.7]
    kept = drop_nested([(outer, 0.95), (inner, 0.9)], 0.8)  # the higher score stays, whichever is larger
    assert [score for _, score in kept] == [0.95] and drop_nested([], 0.8) == []


@pytest.mark.parametrize("photo", ["Renee Zellweger/Renee_Zellweger_0004.jpg", "Condoleezza Rice/Condoleezza_Rice_0001.jpg"])
def test_one_face_at_the_size_two_scales_both_see_is_boxed_once(photo):
    """A 110 px portrait on a wide canvas: the whole-photo pass and a finer scale each box the face, one box
    inside the other; it used to be two faces, and the larger, worse box won --largest-face."""
    from PIL import Image
    gallery = PROBES.parent / "gallery"
    canvas = Image.new("RGB", (500, 300), (128, 128, 128))
    canvas.paste(Image.open(gallery / photo).resize((110, 110)), (300, 50))
    found = make_detector().detect(np.asarray(canvas))
    assert len(found) == 1, [f.box for f in found]
    x0, y0, x1, y1 = found[0].box
    assert 300 < x0 < x1 < 410 and 50 < y0 < y1 < 170


class CountingDetector:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        return [Detection((1.0, 2.0, 30.0, 40.0), 0.9)]


def test_detections_are_cached_per_detector(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    photos = sorted(PROBES.glob("*.jpg"))[:3]
    detector = CountingDetector()
    first = detect_cached(photos, detector, progress=False)
    again = detect_cached(photos, detector, progress=False)
    assert detector.calls == 3 and first == again and first[photos[0]][0].box == (1.0, 2.0, 30.0, 40.0)
    assert detection_cache_file("counting").is_file() and not detection_cache_file("blazeface").exists()


def test_two_commands_filling_one_detection_cache_at_once_both_finish(tmp_path, monkeypatch):
    """`bench verify` and `bench detect` run side by side write the same cache file: each must finish
    (the last to write wins), where a shared temporary name made one fail with FileNotFoundError."""
    from PIL import Image
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    photos = []
    for i in range(160):  # a photo never seen before makes every call write the cache
        photos.append(tmp_path / f"{i}.png")
        Image.new("RGB", (32, 32), (i, 0, 0)).save(photos[-1])
    errors = []

    def fill(mine: list) -> None:
        try:
            for photo in mine:
                detect_cached([photo], CountingDetector(), progress=False)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a writer hit
            errors.append(exc)
    threads = [threading.Thread(target=fill, args=(photos[k::4],)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    cache = detection_cache_file("counting")
    assert errors == [] and json.loads(cache.read_text())
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary file left behind


def test_writers_of_one_file_at_once_each_write_their_own_temporary(tmp_path):
    """Two writers both mid-write at the same moment (a barrier holds each until the other has begun):
    both finish, the file holds one of them whole, and no temporary file is left."""
    target, started, errors = tmp_path / "cache.json", threading.Barrier(2, timeout=10), []

    def writer(text: str) -> None:
        def write(tmp: Path) -> None:
            tmp.write_text(text)
            started.wait()  # the other writer has its temporary file too
        try:
            write_whole(target, write)
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a writer hit
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(text,)) for text in ("first", "second")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and target.read_text() in ("first", "second")
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]
    assert target.stat().st_mode & 0o077 == 0  # owner-only


def test_a_killed_writers_temporary_is_removed_once_stale(tmp_path):
    target = tmp_path / "faces.npz"
    fresh, stale = tmp_path / ".faces.npz.abc.npz", tmp_path / ".faces.npz.def.npz"
    for left in (fresh, stale):
        left.write_bytes(b"half a face set")
    old = time.time() - STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    write_whole(target, lambda tmp: tmp.write_bytes(b"whole"), suffix=".npz")
    assert target.read_bytes() == b"whole" and fresh.exists() and not stale.exists()
