"""Readers for LFW, folder-per-person photo trees and Kaggle keypoint CSVs, on tiny fake data."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from keyface.data.errors import DataError
from keyface.data.folders import read_person_folders
from keyface.data.kaggle import (KAGGLE_COLUMNS, KAGGLE_POINTS, KAGGLE_SIZE, PARTIAL_POINTS,
                         blank_like_kaggle, build_kaggle_from_68, ibug68_to_kaggle15,
                         read_kaggle_csv, write_kaggle_csv)
from keyface.data.lfw import LFW, Pair
# -- a tiny fake LFW tree ---------------------------------------------------------------------

IMAGES = {"Ann_A": 3, "Bob_B": 2, "Cy_C": 1, "Di_D": 2}
PAIRS_DEV_TRAIN = "2\nAnn_A\t1\t2\nBob_B 1 2\nAnn_A\t3\tCy_C\t1\nBob_B\t2\tDi_D\t1\n"
PAIRS_DEV_TEST = "1\nDi_D\t1\t2\nCy_C\t1\tAnn_A\t2\n"
PAIRS_VIEW2 = ("2\t1\n"
               "Ann_A\t1\t3\nAnn_A\t2\tBob_B\t1\n"
               "Di_D\t1\t2\nCy_C\t1\tDi_D\t2\n")
PEOPLE_DEV_TRAIN = "2\nAnn_A\t3\nBob_B\t2\n"
PEOPLE_DEV_TEST = "2\nCy_C\t1\nDi_D\t2\n"
PEOPLE_VIEW2 = "2\n2\nAnn_A\t3\nCy_C\t1\n2\nBob_B 2\nDi_D\t2\n"


def make_lfw(root: Path, overrides: dict[str, str] | None = None) -> Path:
    """Write a fake data root (lfw/lfw-deepfunneled, lfw/protocol); overrides replace files."""
    images = root / "lfw" / "lfw-deepfunneled"
    for person, count in IMAGES.items():
        (images / person).mkdir(parents=True)
        for i in range(1, count + 1):
            (images / person / f"{person}_{i:04d}.jpg").write_bytes(b"jpeg")
    files = {"pairsDevTrain.txt": PAIRS_DEV_TRAIN, "pairsDevTest.txt": PAIRS_DEV_TEST,
             "pairs.txt": PAIRS_VIEW2, "peopleDevTrain.txt": PEOPLE_DEV_TRAIN,
             "peopleDevTest.txt": PEOPLE_DEV_TEST, "people.txt": PEOPLE_VIEW2}
    files.update(overrides or {})
    protocol = root / "lfw" / "protocol"
    protocol.mkdir(parents=True)
    for name, text in files.items():
        (protocol / name).write_text(text)
    return root


@pytest.fixture
def lfw(tmp_path) -> LFW:
    return LFW(make_lfw(tmp_path))


def test_lfw_people_and_paths(lfw, tmp_path):
    assert lfw.people("DevTrain") == ["Ann_A", "Bob_B"]
    assert lfw.people("DevTest") == ["Cy_C", "Di_D"]
    assert lfw.people("all") == ["Ann_A", "Bob_B", "Cy_C", "Di_D"]
    assert lfw.image_count("DevTest") == {"Cy_C": 1, "Di_D": 2}
    assert lfw.image_path("Ann_A", 3) == \
        tmp_path / "lfw" / "lfw-deepfunneled" / "Ann_A" / "Ann_A_0003.jpg"
    assert [p.name for p in lfw.images_of("Ann_A")] == \
        ["Ann_A_0001.jpg", "Ann_A_0002.jpg", "Ann_A_0003.jpg"]
    with pytest.raises(DataError, match="Zed_Z"):
        lfw.images_of("Zed_Z")
    with pytest.raises(DataError, match="Nope"):
        lfw.people("Nope")


def test_lfw_view1_pairs(lfw):
    pairs = lfw.view1_pairs("DevTrain")
    assert [p.same for p in pairs] == [True, True, False, False]
    assert pairs[0] == Pair(lfw.image_path("Ann_A", 1), lfw.image_path("Ann_A", 2),
                            "Ann_A", "Ann_A", True)
    assert (pairs[2].person_a, pairs[2].person_b) == ("Ann_A", "Cy_C")
    assert pairs[2].path_a.name == "Ann_A_0003.jpg" and pairs[2].path_b.name == "Cy_C_0001.jpg"
    test = lfw.view1_pairs("DevTest")
    assert len(test) == 2 and test[1].person_b == "Ann_A" and not test[1].same


def test_lfw_view2_folds_and_people(lfw):
    folds = lfw.view2_folds()
    assert len(folds) == 2 and all(len(f) == 2 for f in folds)
    assert [p.same for p in folds[1]] == [True, False]
    assert folds[1][1].path_b.name == "Di_D_0002.jpg"
    assert lfw.view2_fold_people() == [["Ann_A", "Cy_C"], ["Bob_B", "Di_D"]]


@pytest.mark.parametrize("bad_line, message", [
    ("Bob_B\t1\n", "expected 3 fields, got 2"),
    ("Bob_B\tone\t2\n", "'one' is not an integer"),
    ("Bob_B\t0\t2\n", "below 1"),
])
def test_lfw_garbled_line_names_file_and_line(tmp_path, bad_line, message):
    text = PAIRS_DEV_TRAIN.replace("Bob_B 1 2\n", bad_line)
    lfw = LFW(make_lfw(tmp_path, {"pairsDevTrain.txt": text}))
    with pytest.raises(DataError) as err:
        lfw.view1_pairs("DevTrain")
    assert "pairsDevTrain.txt: line 3:" in str(err.value) and message in str(err.value)


def test_lfw_garbled_people_file(tmp_path):
    lfw = LFW(make_lfw(tmp_path, {"people.txt": PEOPLE_VIEW2.replace("Bob_B 2", "Bob_B two")}))
    with pytest.raises(DataError, match=r"people\.txt: line 6:"):
        lfw.view2_fold_people()


def test_lfw_missing_image_is_named_only_when_checked(tmp_path):
    text = PAIRS_DEV_TEST.replace("Di_D\t1\t2", "Di_D\t1\t7")
    lfw = LFW(make_lfw(tmp_path, {"pairsDevTest.txt": text}))
    with pytest.raises(DataError, match="Di_D_0007.jpg"):
        lfw.view1_pairs("DevTest")
    assert lfw.view1_pairs("DevTest", check_files=False)[0].path_b.name == "Di_D_0007.jpg"


def test_lfw_missing_folder_and_missing_protocol(tmp_path):
    with pytest.raises(DataError, match="lfw-deepfunneled"):
        LFW(tmp_path)
    lfw = LFW(make_lfw(tmp_path / "root"))
    (tmp_path / "root" / "lfw" / "protocol" / "pairs.txt").unlink()
    with pytest.raises(DataError, match=r"pairs\.txt"):
        lfw.view2_folds()


def test_lfw_header_count_mismatch(tmp_path):
    lfw = LFW(make_lfw(tmp_path, {"pairsDevTest.txt": "2\nDi_D\t1\t2\nCy_C\t1\tAnn_A\t2\n"}))
    with pytest.raises(DataError, match=r"pairsDevTest\.txt: header promises 4 pairs"):
        lfw.view1_pairs("DevTest")


# -- folder-per-person photo trees ------------------------------------------------------------

def test_person_folders_skip_hidden_and_non_images(tmp_path, caplog):
    for rel in ["b_person/2.JPG", "b_person/1.png", "b_person/notes.txt", "b_person/.hidden.jpg",
                "a_person/x.jpeg", ".git/y.jpg", "empty_person/readme.md", "c_person/z.webp",
                "b_person/2019/trip/3.jpg", "b_person/.thumbs/4.jpg", "d_person/2019/5.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "loose.jpg").write_bytes(b"x")
    with caplog.at_level(logging.DEBUG, logger="keyface.data.folders"):
        people = read_person_folders(tmp_path)
    # a person's photos in subfolders of theirs are theirs (a person with only such photos too)
    assert list(people) == ["a_person", "b_person", "c_person", "d_person"]
    assert "all its photos are in its subfolders" not in caplog.text  # one subfolder, or photos of its own
    assert [p.name for p in people["b_person"]] == ["1.png", "2.JPG", "3.jpg"]
    assert "notes.txt" in caplog.text
    assert list(read_person_folders(tmp_path, min_images=2)) == ["b_person"]


def test_a_folder_whose_photos_all_lie_in_several_subfolders_is_said_to_be_one_person(tmp_path, caplog):
    for rel in ["Family/Ann/1.jpg", "Family/Bob/2.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list(read_person_folders(tmp_path)) == ["Family"]
    assert "all its photos are in its subfolders (Ann, Bob): they are taken as one person, 'Family'" in caplog.text


def test_person_folders_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        read_person_folders(tmp_path / "missing")
    (tmp_path / "someone").mkdir()
    (tmp_path / "someone" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as err:
        read_person_folders(tmp_path)
    assert str(tmp_path) in str(err.value) and "<person>/<photo>.jpg" in str(err.value)
    (tmp_path / "someone" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="at least 3"):
        read_person_folders(tmp_path, min_images=3)


# -- Kaggle CSVs ------------------------------------------------------------------------------

def random_kaggle(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n random 96x96 images and points with a few NaNs."""
    images = rng.integers(0, 256, (n, KAGGLE_SIZE, KAGGLE_SIZE), dtype=np.uint8)
    points = rng.uniform(0, 96, (n, 15, 2)).astype(np.float32)
    points[0, 3:] = np.nan
    points[2, 10] = np.nan
    return images, points


def test_kaggle_columns():
    assert len(KAGGLE_POINTS) == 15 and len(KAGGLE_COLUMNS) == 30
    assert KAGGLE_COLUMNS[:3] == ("left_eye_center_x", "left_eye_center_y", "right_eye_center_x")
    assert KAGGLE_COLUMNS[-1] == "mouth_center_bottom_lip_y"


def test_kaggle_round_trip(tmp_path):
    images, points = random_kaggle(np.random.default_rng(0), 4)
    path = tmp_path / "training.csv"
    write_kaggle_csv(path, images, points)
    header, first = path.read_text().splitlines()[:2]
    assert header == ",".join(KAGGLE_COLUMNS) + ",Image"
    assert first.count(",,") > 0  # NaN written as an empty cell
    images2, points2 = read_kaggle_csv(path)
    assert images2.dtype == np.uint8 and points2.dtype == np.float32
    np.testing.assert_array_equal(images2, images)
    np.testing.assert_array_equal(points2, points)  # NaNs in the same places, values exact
    assert np.isnan(points2[0, 3:]).all() and np.isnan(points2[2, 10]).all()


def _write_rows(path: Path, image_cells: list[str], coord: str = "1.5") -> None:
    """A Kaggle CSV with the given Image cells and every coordinate set to coord."""
    rows = [",".join([coord] * 30 + [cell]) for cell in image_cells]
    path.write_text("\n".join([",".join(KAGGLE_COLUMNS) + ",Image"] + rows) + "\n")


@pytest.mark.parametrize("cell, message", [
    (" ".join(["7"] * 9215), "9215 values"),
    (" ".join(["7"] * 9215 + ["x"]), "non-integer"),
    (" ".join(["7"] * 9215 + ["256"]), "outside 0..255"),
])
def test_kaggle_garbled_image_names_row(tmp_path, cell, message):
    path = tmp_path / "bad.csv"
    _write_rows(path, [" ".join(["7"] * 9216), cell])
    with pytest.raises(DataError) as err:
        read_kaggle_csv(path)
    assert "bad.csv" in str(err.value) and "row 2 (line 3)" in str(err.value)
    assert message in str(err.value)


def test_kaggle_bad_coordinates_and_columns(tmp_path):
    path = tmp_path / "bad.csv"
    _write_rows(path, [" ".join(["7"] * 9216)], coord="abc")
    with pytest.raises(DataError, match=r"bad\.csv: row 1 .*left_eye_center_x.*'abc'"):
        read_kaggle_csv(path)
    path.write_text("left_eye_center_x,Image\n1," + " ".join(["7"] * 9216) + "\n")
    with pytest.raises(DataError, match=r"bad\.csv: missing column.*mouth_center_bottom_lip_y"):
        read_kaggle_csv(path)
    with pytest.raises(DataError, match="nope.csv"):
        read_kaggle_csv(tmp_path / "nope.csv")


def test_kaggle_test_format(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("ImageId,Image\n1," + " ".join(["9"] * 9216) + "\n")
    images, points = read_kaggle_csv(path)
    assert images.shape == (1, 96, 96) and (images == 9).all()
    assert points.shape == (1, 15, 2) and np.isnan(points).all()


def frontal_face68(center: tuple[float, float] = (100.0, 120.0), size: float = 60.0) -> np.ndarray:
    """A synthetic frontal iBUG-68 face: every point set, image-oriented like iBUG."""
    kp = np.zeros((68, 2), np.float64)
    cx, cy = center
    t = np.linspace(0, 1, 17)
    kp[0:17] = np.c_[cx + size * (t - 0.5), cy + size * 0.3 * np.sin(np.pi * t)]  # jaw
    kp[17:22] = np.c_[cx + size * np.linspace(-0.4, -0.05, 5), np.full(5, cy - size * 0.35)]
    kp[22:27] = np.c_[cx + size * np.linspace(0.05, 0.4, 5), np.full(5, cy - size * 0.35)]
    kp[27:36] = np.c_[np.full(9, cx), cy + size * np.linspace(-0.25, 0.1, 9)]  # nose; 30 = tip
    ring = np.c_[np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)),
                 0.4 * np.sin(np.linspace(0, 2 * np.pi, 6, endpoint=False))] * size * 0.1
    kp[36:42] = ring + (cx - size * 0.22, cy - size * 0.2)  # image-left eye
    kp[42:48] = ring + (cx + size * 0.22, cy - size * 0.2)  # image-right eye
    kp[48:68] = np.c_[cx + size * 0.2 * np.cos(np.linspace(np.pi, -np.pi, 20)),
                      cy + size * 0.25 + size * 0.05 * np.sin(np.linspace(np.pi, -np.pi, 20))]
    return kp


def test_ibug68_to_kaggle15_maps_person_left_to_image_right():
    kp = frontal_face68()
    kp[36:42] += np.random.default_rng(1).normal(0, 1, (6, 2))  # uneven contour: mean matters
    k15 = ibug68_to_kaggle15(kp)
    assert k15.shape == (15, 2)
    idx = {name: i for i, name in enumerate(KAGGLE_POINTS)}
    np.testing.assert_allclose(k15[idx["left_eye_center"]], kp[42:48].mean(axis=0))
    np.testing.assert_allclose(k15[idx["right_eye_center"]], kp[36:42].mean(axis=0))
    assert k15[idx["left_eye_center"], 0] > k15[idx["right_eye_center"], 0]
    assert k15[idx["mouth_left_corner"], 0] > k15[idx["mouth_right_corner"], 0]
    for name, i68 in [("nose_tip", 30), ("left_eye_outer_corner", 45),
                      ("right_eyebrow_outer_end", 17), ("mouth_center_bottom_lip", 57)]:
        np.testing.assert_array_equal(k15[idx[name]], kp[i68])
    batch = ibug68_to_kaggle15(np.stack([kp, kp + 1])[None])
    assert batch.shape == (1, 2, 15, 2)
    np.testing.assert_allclose(batch[0, 1], k15 + 1)


@pytest.mark.parametrize("rgb, side", [(False, 150), (True, 300)])
def test_build_kaggle_from_68_puts_dot_where_mapped(rgb, side):
    import cv2
    kp = frontal_face68(center=(side * 0.55, side * 0.5), size=side * 0.45)
    kp[30] = (side * 0.58, side * 0.53)
    image = np.full((side, side), 20, np.uint8)
    cv2.circle(image, (int(round(kp[30, 0])), int(round(kp[30, 1]))), max(1, side // 100),
               255, -1)
    if rgb:
        image = np.repeat(image[:, :, None], 3, axis=2)
    x0, y0, width = side * 0.2, side * 0.15, side * 0.7
    boxes = np.array([[x0, y0, x0 + width, y0 + width]])
    images, points = build_kaggle_from_68([image], kp[None], boxes)
    assert images.shape == (1, 96, 96) and images.dtype == np.uint8
    assert points.shape == (1, 15, 2) and points.dtype == np.float32
    nose = points[0, KAGGLE_POINTS.index("nose_tip")]
    np.testing.assert_allclose(nose, (kp[30] - (x0, y0)) * 96 / width, rtol=1e-5)
    row, col = np.unravel_index(np.argmax(images[0]), images[0].shape)
    assert np.hypot(col - nose[0], row - nose[1]) <= 1.5
    assert images[0, 0, 0] == 20  # background stays dark


def test_blank_like_kaggle():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 96, (200, 15, 2)).astype(np.float32)
    out = blank_like_kaggle(points, rng)
    assert np.isfinite(points).all()  # the input is untouched
    partial = np.isnan(out).any(axis=(1, 2))
    assert partial.mean() == pytest.approx(0.7, abs=0.01)
    keep = [KAGGLE_POINTS.index(name) for name in PARTIAL_POINTS]
    others = [k for k in range(15) if k not in keep]
    assert np.isfinite(out[:, keep]).all()
    assert np.isnan(out[partial][:, others]).all()
    np.testing.assert_array_equal(out[~partial], points[~partial])


# -- the real LFW -----------------------------------------------------------------------------

@pytest.mark.data
def test_real_lfw_view1_counts(data_root):
    lfw = LFW(data_root)
    train, test = lfw.people("DevTrain"), lfw.people("DevTest")
    assert len(train) == 4038 and len(test) == 1711 and not set(train) & set(test)
    assert sum(lfw.image_count("DevTrain").values()) == 9525
    pairs = lfw.view1_pairs("DevTrain")
    assert len(pairs) == 2200 and sum(p.same for p in pairs) == 1100
    test_pairs = lfw.view1_pairs("DevTest")
    assert len(test_pairs) == 1000 and sum(p.same for p in test_pairs) == 500
    assert len(lfw.people("all")) == 5749


@pytest.mark.data
def test_real_lfw_view2(data_root):
    lfw = LFW(data_root)
    folds = lfw.view2_folds()
    assert len(folds) == 10 and all(len(f) == 600 for f in folds)
    assert all(sum(p.same for p in f) == 300 for f in folds)
    assert folds[0][0].path_a.name == "Abel_Pacheco_0001.jpg"
    assert folds[0][0].path_b.name == "Abel_Pacheco_0004.jpg"
    fold_people = lfw.view2_fold_people()
    assert len(fold_people) == 10 and sum(map(len, fold_people)) == 5749
    assert len(fold_people[0]) == 601
