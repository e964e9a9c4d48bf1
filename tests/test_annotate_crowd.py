"""Annotated copies of group photos stay readable: 40-60 small faces, labels legible, inside the image and apart,
numbers when names do not fit, few keypoints on tiny faces; the same for `keypoints --out` and the browser page."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from keyface.keypoints.photos import draw_keypoints
from keyface.recognition.core.annotate import draw_identities, label_layout, label_px, min_label_px

APP_JS = Path(__file__).resolve().parent.parent / "recognition" / "server" / "static" / "app.js"
NAMES = ["Maria Fernanda de los Santos", None, "Jean-Baptiste Delacroix-Moreau", "Ana", "Li Wei"]
GREY = 120


def grid_boxes(n: int, cols: int, origin: tuple[int, int], pitch: tuple[int, int], seed: int = 0) -> list:
    """n square face boxes, 24 to 60 pixels wide, in a grid."""
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(n):
        r, c = divmod(i, cols)
        w = int(rng.integers(24, 61))
        x, y = origin[0] + c * pitch[0], origin[1] + r * pitch[1]
        boxes.append((float(x), float(y), float(x + w), float(y + w)))
    return boxes


def result(box, name, keypoints=None):
    """A fake identification result: what draw_identities reads."""
    points = np.zeros((0, 2)) if keypoints is None else keypoints
    return SimpleNamespace(box=box, keypoints=points, name=name)  # the parts of a Face it reads


def texts(boxes) -> list[str]:
    return [f"{n} {NAMES[n % len(NAMES)] or 'unknown'}" for n in range(1, len(boxes) + 1)]


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_inside_and_apart(rects, size) -> None:
    for i, (x0, y0, x1, y1) in enumerate(rects):
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1], (i, rects[i])
        for j in range(i + 1, len(rects)):
            assert not overlap(rects[i], rects[j]), (i, j, rects[i], rects[j])


SPREAD = grid_boxes(40, 8, (300, 300), (300, 300))   # room for every name
TIGHT = grid_boxes(40, 10, (1200, 800), (64, 70))    # a packed group: names cannot all fit beside their faces
EDGES = [(x, y, x + w, y + w) for i, w in enumerate(range(24, 64, 4))  # faces against each side of the photo
         for x, y in ((i * 290.0, 0.0), (i * 290.0, 2000.0 - w), (0.0, 200 + i * 160.0), (3000.0 - w, 200 + i * 160.0))]


@pytest.mark.parametrize("boxes", [SPREAD, TIGHT, EDGES], ids=["spread", "tight", "edges"])
def test_forty_labels_stay_inside_the_image_and_apart(boxes):
    size = (3000, 2000)
    labels = label_layout(boxes, texts(boxes), size)
    assert len(labels) == 40
    assert_inside_and_apart([label.rect for label in labels], size)
    for n, (label, text) in enumerate(zip(labels, texts(boxes)), start=1):
        assert label.text in (text, str(n)), label  # the whole label, or its number alone


def test_names_where_there_is_room_numbers_in_a_packed_group():
    size = (3000, 2000)
    spread = label_layout(SPREAD, texts(SPREAD), size)
    assert all(label.text == text for label, text in zip(spread, texts(SPREAD)))
    tight = label_layout(TIGHT, texts(TIGHT), size)
    numbers = [label for label in tight if " " not in label.text]
    assert 0 < len(numbers) < 40  # some names give way, never all
    cores = [(b[0] + (b[2] - b[0]) * .2, b[1] + (b[3] - b[1]) * .2, b[2] - (b[2] - b[0]) * .2,
              b[3] - (b[3] - b[1]) * .2) for b in SPREAD]
    assert not any(overlap(label.rect, core) for label in spread for core in cores)  # no name over a face


@pytest.mark.parametrize("size, floor", [((3000, 2000), 16), ((4000, 3000), 25), ((640, 480), 11)])
def test_label_font_is_at_least_the_floor(size, floor):
    assert min_label_px(size) == floor
    boxes = grid_boxes(40, 10, (size[0] // 10, size[1] // 10), (size[0] // 12, size[1] // 6))
    labels = label_layout(boxes, texts(boxes), size)
    assert all(label.px >= floor for label in labels)
    assert all(label.rect[3] - label.rect[1] >= floor for label in labels)  # the drawn height, not just the size
    assert label_px((0, 0, 2000, 2000), size) <= max(floor, min(size) // 24)  # a huge face: no poster text


def test_draw_identities_draws_every_face_and_its_label_where_the_layout_says():
    size = (3000, 2000)
    rgb = np.full((size[1], size[0], 3), GREY, np.uint8)
    results = [result(b, NAMES[i % len(NAMES)]) for i, b in enumerate(SPREAD)]
    drawn = draw_identities(rgb, results)
    assert drawn.shape == rgb.shape and drawn.dtype == np.uint8 and (rgb == GREY).all()  # a copy
    changed = (drawn != GREY).any(axis=-1)
    for x0, y0, x1, y1 in (tuple(int(v) for v in b) for b in SPREAD):
        assert changed[y0 - 2:y1 + 3, x0 - 2:x1 + 3].sum() >= 2 * (x1 - x0)  # at least its box's outline
    ranked = sorted(results, key=lambda r: r.box[0])
    names = [f"{n} {r.name or 'unknown'}" for n, r in enumerate(ranked, 1)]
    for label in label_layout([r.box for r in ranked], names, size):
        x0, y0, x1, y1 = label.rect
        assert changed[y0:y1, x0:x1].mean() > 0.95  # filled: the label is drawn where the layout put it


def test_few_keypoints_on_a_tiny_face():
    rgb = np.full((2000, 3000, 3), GREY, np.uint8)
    points = np.array([(100 + (i % 17) * 12, 100 + (i // 17) * 12) for i in range(68)], float)
    blobs = []
    for width in (30, 100):
        drawn = draw_identities(rgb, [result((1000, 1000, 1000 + width, 1000 + width), "Ana", points)])
        dots = np.all(drawn[:400, :400] == (255, 220, 0), axis=-1).astype(np.uint8)
        blobs.append(cv2.connectedComponents(dots)[0] - 1)
    assert blobs == [5, 68]


def test_sixty_faces_in_a_big_photo_annotate_fast():
    rgb = np.full((3000, 4000, 3), GREY, np.uint8)
    boxes = grid_boxes(60, 20, (800, 1200), (55, 60), seed=1)
    results = [result(b, NAMES[i % len(NAMES)], np.random.default_rng(i).uniform(b[0], b[2], (68, 2)))
               for i, b in enumerate(boxes)]
    start = time.perf_counter()
    draw_identities(rgb, results)
    assert time.perf_counter() - start < 2.0
    labels = label_layout(boxes, texts(boxes), (4000, 3000))
    assert_inside_and_apart([label.rect for label in labels], (4000, 3000))


def test_keypoints_number_is_legible_on_a_small_face_in_a_big_photo():
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    box = (1000, 1000, 1030, 1030)
    drawn = draw_keypoints(rgb, box, np.zeros((0, 2)), 7)
    ys, _ = np.nonzero(np.all(drawn == 255, axis=-1))  # the white digits on their tag
    assert ys.size and ys.max() - ys.min() + 1 >= 0.7 * min_label_px((4000, 3000))  # a 25-pixel font's digits
    assert not drawn[1003:1028, 1003:1028].any()  # beside the face, not on it


def test_keypoints_numbers_of_neighbours_stay_apart():
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    taken: list = []
    for n, x in enumerate(range(1000, 1400, 40), start=1):
        rgb = draw_keypoints(rgb, (x, 1000, x + 30, 1030), np.zeros((0, 2)), n + 9, taken=taken)
    assert len(taken) == 10
    assert_inside_and_apart(taken, (4000, 3000))


NODE_SCRIPT = r"""
const fs = require("fs"), vm = require("vm");
const stub = new Proxy(function () {}, {
  get: (t, k) => (k === Symbol.toPrimitive ? () => "" : k === "then" ? undefined : stub),
  apply: () => stub, set: () => true, construct: () => stub,
});
const page = { document: stub, window: stub, location: { hash: "", pathname: "/", search: "" }, history: stub,
               sessionStorage: stub, URL: stub, FormData: stub, Image: stub, fetch: () => new Promise(() => {}) };
vm.createContext(page);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), page);
const [boxes, texts, width, height] = JSON.parse(process.argv[2]);
const font = page.labelFont(width, height);
const spots = page.layoutLabels(boxes, texts, width, height, font + 6, (t) => t.length * font * 0.6 + 6);
console.log(JSON.stringify({ font, spots }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="the page's layout is checked with Node.js")
def test_page_places_forty_small_labels_apart():
    """The page's own layoutLabels, run in Node with the DOM stubbed out, on a 720 x 480 canvas."""
    boxes = [[b[0] / 5, b[1] / 5, b[2] / 5, b[3] / 5] for b in TIGHT]  # 5-12 pixel faces, as a big photo shrinks
    args = json.dumps([boxes, texts(boxes), 720, 480])
    done = subprocess.run(["node", "-e", NODE_SCRIPT, str(APP_JS), args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["font"] >= 11
    rects = [(s["x"], s["y"], s["x"] + s["w"], s["y"] + s["h"]) for s in out["spots"]]
    assert_inside_and_apart(rects, (720, 480))
    shown = [s["text"] for s in out["spots"]]
    assert all(t in (full, full.split(" ")[0]) for t, full in zip(shown, texts(boxes)))
    assert any(" " not in t for t in shown) and any(" " in t for t in shown)
