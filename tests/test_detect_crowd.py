"""Every face at any size: the default detector on generated group canvases, across tiles and scales,
on a 40 MP photo, and on hostile photos."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keyface.data.crowd import CanvasSpec, Source, crop_around, make_canvas, match_faces
from keyface.data.images import load_image
from keyface.detection import detector as blazeface  # BlazeFace lives in detection.detector
from keyface.detection.detector import MIN_FACE, BlazeFaceDetector, box_iou, weighted_nms
from keyface.recognition.core.pipeline import make_detector

PROBES = sorted((Path(__file__).resolve().parent.parent / "recognition" / "demo" / "probes").glob("*.jpg"))


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def sources(detector):
    """The shipped demo probes (LFW photos) with their face's box; photos with someone in the background
    are left out, since their second face is not in the canvases' truth."""
    out = []
    for path in PROBES:
        faces = detector.detect(load_image(path))
        if len(faces) == 1:
            out.append(Source(path.stem, path, faces[0].box))
    assert len(out) >= 12
    return out


def canvas_of(sources, size: tuple[int, int], face_px: tuple[float, float], faces: int, seed: int):
    spec = CanvasSpec(size[0], size[1], (faces, faces), face_px, rotate_share=0, blur_share=0, jpeg_share=0)
    return make_canvas("test", spec, sources, np.random.default_rng(seed), load_image)


@pytest.mark.parametrize("face_px", [(28.0, 34.0), (40.0, 60.0), (90.0, 150.0)])
def test_every_face_of_a_group_canvas_is_found_once(detector, sources, face_px):
    canvas = canvas_of(sources, (1600, 1200), face_px, 16, seed=int(face_px[0]))
    assert len(canvas.faces) >= 12
    found = [f.box for f in detector.detect(canvas.image)]
    matched, false = match_faces([f.box for f in canvas.faces], found)
    assert all(m is not None for m in matched), [f.size for f, m in zip(canvas.faces, matched) if m is None]
    assert false == []  # no duplicate from overlapping tiles or scales, nothing in the background


def test_faces_on_the_seams_between_tiles_are_found_once(detector, sources):
    """Faces pasted where the finest scale's tiles overlap: each must come out as one box."""
    height, width = 1200, 2600
    scale = blazeface.scales(height, width, MIN_FACE)[0]
    cuts = blazeface.tiles(round(height * scale), round(width * scale))
    assert len(cuts) > 1
    seams = sorted({x0 for x0, _, _, _ in cuts if x0 > 0})
    image = np.full((height, width, 3), 110, np.uint8)
    truth = []
    for i, seam in enumerate(seams):
        x = int((seam + 48) / scale)  # the middle of the overlap, in photo pixels
        for j, y in enumerate((150, 600, 1000)):
            source = sources[(3 * i + j) % len(sources)]
            face = load_image(source.photo)[40:210, 40:210]
            image[y - 85:y + 85, x - 85:x + 85] = face
            b = source.box
            truth.append((b[0] - 40 + x - 85, b[1] - 40 + y - 85, b[2] - 40 + x - 85, b[3] - 40 + y - 85))
    small = np.asarray([np.asarray(image[::2, ::2])])[0]  # halve it: faces ~50 px, found at the finest scale
    found = [f.box for f in detector.detect(np.ascontiguousarray(small))]
    matched, false = match_faces([tuple(v / 2 for v in t) for t in truth], found)
    assert all(m is not None for m in matched) and false == []


def test_tiles_cover_the_image_with_enough_overlap_and_bounded_size():
    cfg = blazeface.PyramidConfig()
    for height, width in ((100, 90), (1200, 1600), (2250, 3000), (5470, 7300), (10, 40000)):
        cuts = blazeface.tiles(height, width)
        covered = np.zeros((height, width), bool)
        for x0, y0, x1, y1 in cuts:
            assert (x1 - x0) % cfg.align == 0 and (y1 - y0) % cfg.align == 0
            assert x1 - x0 <= max(cfg.tile, width + cfg.align) and y1 - y0 <= max(cfg.tile, height + cfg.align)
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        xs = sorted({(x0, x1) for x0, _, x1, _ in cuts})
        assert all(a[1] - b[0] >= cfg.overlap for a, b in zip(xs, xs[1:]))


def test_scales_run_from_min_face_down_to_the_whole_photo():
    assert blazeface.scales(250, 250, 24) == [pytest.approx(18 / 24)]
    four_k = blazeface.scales(3000, 4000, 24)
    assert four_k[0] == pytest.approx(0.75) and all(b == pytest.approx(a / 4) for a, b in zip(four_k, four_k[1:]))
    assert 4000 * four_k[-1] <= 4 * 128 * 1.25 < 4000 * four_k[-1] * 4
    assert blazeface.scales(3000, 4000, 80)[0] == pytest.approx(18 / 80)  # a larger min_face: fewer pixels
    assert blazeface.scales(100, 100, 24) == []  # the whole-photo pass sees 24 px faces in a small photo


def test_min_face_bounds_the_search(sources):
    canvas = canvas_of(sources, (1600, 1200), (30.0, 36.0), 10, seed=3)
    coarse = make_detector("blazeface", min_face=80)
    assert coarse.min_face == 80 and coarse.cache_name != make_detector().cache_name
    assert match_faces([f.box for f in canvas.faces], [f.box for f in coarse.detect(canvas.image)])[0].count(None) >= 8
    with pytest.raises(Exception, match="min_face"):
        make_detector("blazeface", min_face=2)


def test_a_portrait_is_still_one_face(detector):
    for path in PROBES[:5]:
        assert len(detector.detect(load_image(path))) == 1, path


def _with_background_face(portrait: np.ndarray, face_photo: np.ndarray, source, width: float, at: tuple[int, int]):
    """The portrait with another photo's face pasted `width` px wide at (x, y): a face in the background."""
    import cv2
    crop, box = crop_around(face_photo, source)
    k = width / (box[2] - box[0])
    small = cv2.resize(crop, (round(crop.shape[1] * k), round(crop.shape[0] * k)), interpolation=cv2.INTER_AREA)
    out = portrait.copy()
    out[at[1]:at[1] + small.shape[0], at[0]:at[0] + small.shape[1]] = small
    return out, tuple(v * k + o for v, o in zip(box, (*at, *at)))


def test_small_faces_behind_a_portrait_are_found(detector, sources, monkeypatch):
    """On a portrait-sized photo the finer scale runs only where the whole-photo pass hints at a face away
    from those it found: faces of 24-26 px in the background are found nearly as often as by searching
    every photo at the finer scale, and far more often than by the whole-photo pass alone."""
    cases = [(sources[b].box, *_with_background_face(load_image(sources[b].photo), load_image(other.photo), other,
                                                     width, at))
             for b in (0, 2, 5) for other in sources if other is not sources[b]
             for width in (24.0, 26.0) for at in ((4, 4), (180, 6), (4, 170))]

    def missed(gate: float) -> int:
        monkeypatch.setattr(blazeface, "GATE_SCORE", gate)
        return sum(None in match_faces([portrait, truth], [f.box for f in detector.detect(photo)])[0]
                   for portrait, photo, truth in cases)
    gate = blazeface.GATE_SCORE
    # a hint just under the faces' cut (0.5) never comes: the whole-photo pass alone
    everywhere, hinted, whole_photo_alone = missed(1e-6), missed(gate), missed(0.4999)
    assert hinted <= everywhere + 3 and whole_photo_alone >= hinted + 50, (everywhere, hinted, whole_photo_alone)


def test_a_plain_portrait_is_searched_by_the_whole_photo_pass_alone(sources, monkeypatch):
    """The fine scale costs as much as the whole-photo pass; a portrait with nothing else in it skips it."""
    detector, tiled = BlazeFaceDetector(), []
    run_tiles = detector._tiles
    monkeypatch.setattr(detector, "_tiles", lambda *args: tiled.append(1) or run_tiles(*args))
    photo = np.full((250, 250, 3), 128, np.uint8)
    face = load_image(sources[0].photo)[60:190, 60:190]
    photo[60:190, 60:190] = face  # the face on a plain grey photo
    assert len(detector.detect(photo)) == 1 and tiled == []
    big = np.ascontiguousarray(np.repeat(np.repeat(photo, 2, 0), 2, 1))  # 500 px: the whole-photo pass sees too little
    assert len(detector.detect(big)) == 1 and tiled == [1]
    low_cut = BlazeFaceDetector(min_score=0.05)  # every anchor it keeps is a face: no hint is told apart
    run_low = low_cut._tiles
    monkeypatch.setattr(low_cut, "_tiles", lambda *args: tiled.append(2) or run_low(*args))
    low_cut.detect(photo)
    assert tiled == [1, 2]


def _peak_rss_mb(code: str) -> tuple[float, str]:
    """Peak resident memory (MB) of a fresh Python running code, and its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_kb, _, printed = out.stdout.strip().partition(" ")
    return int(peak_kb) / 1024, printed


def test_a_40_megapixel_photo_is_searched_within_its_memory_bound():
    """7300 x 5480 px: the photo itself is 120 MB; the search may add the finest scale's copy (~70 MB) and
    one tile's buffers, never memory that grows with the photo's area several times over."""
    code = ("import numpy as np, resource\n"
            "from keyface.detection.detector import BlazeFaceDetector\n"
            "d = BlazeFaceDetector(); d.detect(np.zeros((64, 64, 3), np.uint8))\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "rng = np.random.default_rng(0)\n"
            "photo = rng.integers(0, 256, (5480, 7300, 3), dtype=np.uint8)\n"
            "faces = d.detect(photo)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, len(faces))\n")
    added_mb, faces = _peak_rss_mb(code)
    assert added_mb < 700, added_mb
    assert int(faces) == 0  # noise holds no face


def test_hostile_photos_answer_in_bounded_time(detector):
    strip = np.full((1, 40000, 3), 128, np.uint8)
    started = time.perf_counter()
    assert detector.detect(strip) == []
    noise = np.random.default_rng(1).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    faces = detector.detect(noise)
    assert len(faces) <= 1 and time.perf_counter() - started < 30


def test_the_keras_rebuild_of_blazeface_computes_what_the_tflite_file_does():
    """The int8 file is made from this rebuild: it must be the same network (outputs to ~1e-4)."""
    from ai_edge_litert.interpreter import Interpreter
    from keyface.detection.blazeface_int8 import rebuild_keras
    model = rebuild_keras(blazeface.MODEL_FILE)
    x = blazeface.letterbox(load_image(PROBES[0]))[0]
    reference = Interpreter(model_path=str(blazeface.MODEL_FILE))
    reference.allocate_tensors()
    reference.set_tensor(reference.get_input_details()[0]["index"], x)
    reference.invoke()
    want = {tuple(o["shape"]): reference.get_tensor(o["index"]) for o in reference.get_output_details()}
    for got in model(x):
        got = np.asarray(got)
        assert np.abs(got - want[got.shape]).max() < 1e-3
    wide = np.asarray(model(np.zeros((1, 256, 384, 3), np.float32))[0])  # any input size
    assert wide.shape[1] == len(blazeface.grid_anchors(256, 384))


def test_the_int8_tiles_find_what_the_float_network_finds(detector):
    """The shipped int8 file, pinned by hash, against the float file on the finest scale of real photos."""
    from keyface.detection import detector as blazeface  # BlazeFace lives in detection.detector
    blazeface.checked_model_file(blazeface.INT8_FILE, blazeface.INT8_SHA256)
    for path in PROBES[:8]:
        level = np.ascontiguousarray(load_image(path)[::2, ::2][:112, :112])  # faces ~55 px, as tiles see them
        boxes = {}
        for precision in ("float32", "int8"):
            out = detector._net(precision, level.shape[:2]).outputs(blazeface.to_input(level))
            found, scores = blazeface.decode(out, blazeface.grid_anchors(*level.shape[:2]), 0.65)
            boxes[precision] = weighted_nms(found, scores, blazeface.NMS_IOU)[0]
        assert box_iou(boxes["float32"][0], boxes["int8"][0])[0, 0] > 0.75, path  # measured 0.81-0.94
        assert abs(boxes["float32"][1] - boxes["int8"][1]) < 0.1, path
