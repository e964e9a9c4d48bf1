"""`keyface keypoints PHOTO...` end to end: real faces, odd formats, bad files; never a traceback."""
import json

import numpy as np
import pytest
from PIL import Image

from keyface.data.images import load_image
from keyface.runtime.networks import save_model
from keyface.keypoints.models import ModelConfig, build_model
from keyface.recognition.cli.main import main
from tests.badimages import encode, exif_rotated_jpeg, two_face_photo, write_bad_files


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained small 68-point net: these tests check plumbing, not accuracy."""
    import keras
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(width=8, embedding_dim=32)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    meta = {"kind": "keypoints", "scheme": "ibug68", "config": {"model": cfg.to_dict()}}
    return str(save_model(build_model(cfg), path, meta))


def run(argv, capsys):
    """Run the CLI; return exit code, stdout, stderr."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def predict_json(photo, model, capsys):
    """The --json result for one photo."""
    code, out, err = run(["keypoints", str(photo), "--model", model, "--json"], capsys)
    return code, json.loads(out.splitlines()[0]), err


@pytest.mark.parametrize("name", ["not_image.jpg", "empty.jpg", "truncated.jpg", "tiny.png", "bomb.png"])
def test_bad_photo_gives_one_line_error_and_nonzero_exit(tmp_path, tiny_model, capsys, name):
    photo = write_bad_files(tmp_path)[name]
    code, _, err = run(["keypoints", str(photo), "--model", tiny_model], capsys)
    lines = [l for l in err.splitlines() if l.startswith("keyface")]
    assert code == 2 and len(lines) == 1 and name in lines[0]
    assert "Traceback" not in err


def test_photo_with_no_face(tmp_path, tiny_model, capsys):
    photo = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (128, 128, 128)).save(photo)
    code, _, err = run(["keypoints", str(photo), "--model", tiny_model], capsys)
    assert code == 2 and "no face found" in err and "Traceback" not in err


def test_good_and_bad_photos_together_keep_the_good_results(tmp_path, youtube_sample, tiny_model, capsys):
    bad = write_bad_files(tmp_path)["not_image.jpg"]
    code, out, err = run(["keypoints", str(youtube_sample[0][0]), str(bad), "--model", tiny_model, "--json"], capsys)
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and len(results[0]["faces"]) == 1 and results[1]["faces"] == [] and "error" in results[1]


def test_photo_with_several_faces_reports_each(tmp_path, youtube_sample, tiny_model, capsys):
    photo, faces = two_face_photo(tmp_path, [p for p, _ in youtube_sample[:2]])
    code, result, _ = predict_json(photo, tiny_model, capsys)
    centres = sorted((f["box"][0] + f["box"][2]) / 2 for f in result["faces"])
    assert code == 0 and len(centres) == 2 and centres[0] < faces[0].shape[1] + 40 < centres[1]
    assert all(np.asarray(f["keypoints"]).shape == (68, 2) for f in result["faces"])


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "I;16"])
def test_other_pixel_formats_find_the_same_face(tmp_path, youtube_sample, tiny_model, capsys, mode):
    rgb = load_image(youtube_sample[0][0])
    if mode == "I;16":
        image = Image.fromarray((np.asarray(Image.fromarray(rgb).convert("L"), np.uint16) * 257))
    else:
        image = Image.fromarray(rgb).convert(mode)
    photo = tmp_path / f"face.{'jpg' if mode == 'CMYK' else 'png'}"
    photo.write_bytes(encode(image, "JPEG" if mode == "CMYK" else "PNG"))
    code, result, _ = predict_json(photo, tiny_model, capsys)
    _, reference, _ = predict_json(youtube_sample[0][0], tiny_model, capsys)
    assert code == 0 and len(result["faces"]) == 1
    assert np.abs(np.subtract(result["faces"][0]["box"], reference["faces"][0]["box"])).max() < 8


def test_exif_rotated_photo_is_read_upright(tmp_path, youtube_sample, tiny_model, capsys):
    upright = load_image(youtube_sample[0][0])
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # sideways; EXIF 6 turns it back clockwise
    photo = tmp_path / "rotated.jpg"
    photo.write_bytes(exif_rotated_jpeg(stored, orientation=6))
    code, result, _ = predict_json(photo, tiny_model, capsys)
    _, reference, _ = predict_json(youtube_sample[0][0], tiny_model, capsys)
    assert code == 0 and (result["height"], result["width"]) == upright.shape[:2]
    assert np.abs(np.subtract(result["faces"][0]["box"], reference["faces"][0]["box"])).max() < 8


def test_annotated_output_and_sunglasses(tmp_path, youtube_sample, tiny_model, capsys):
    out = tmp_path / "annotated.png"
    code, _, _ = run(["keypoints", str(youtube_sample[1][0]), "--model", tiny_model, "--out", str(out),
                      "--filter", "sunglasses"], capsys)
    original = load_image(youtube_sample[1][0])
    drawn = load_image(out)
    assert code == 0 and drawn.shape == original.shape and (drawn != original).any()


def test_missing_model_is_one_line(tmp_path, youtube_sample, capsys):
    code, _, err = run(["keypoints", str(youtube_sample[0][0]), "--model", str(tmp_path / "nope.keras")], capsys)
    assert code == 2 and "not found" in err and "Traceback" not in err


def test_out_naming_one_picture_is_refused_for_several_photos(tmp_path, youtube_sample, tiny_model, capsys):
    out = tmp_path / "drawn.jpg"
    code, _, err = run(["keypoints", str(youtube_sample[0][0]), str(youtube_sample[1][0]), "--model", tiny_model,
                        "--out", str(out)], capsys)
    assert code == 2 and "names one picture, but 2 photos were given" in err and not out.exists()


def test_out_with_an_ending_keyface_cannot_write_is_refused_not_made_a_folder(tmp_path, youtube_sample, tiny_model,
                                                                              capsys):
    for name in ("drawn.gif", "points.txt"):
        code, _, err = run(["keypoints", str(youtube_sample[0][0]), "--model", tiny_model, "--out",
                            str(tmp_path / name)], capsys)
        assert code == 2 and "neither a picture keyface writes" in err and not (tmp_path / name).exists()
    (tmp_path / "v1.0").mkdir()  # a folder that exists takes the copies whatever its name
    code, _, _ = run(["keypoints", str(youtube_sample[0][0]), "--model", tiny_model, "--out", str(tmp_path / "v1.0")],
                     capsys)
    assert code == 0 and len(list((tmp_path / "v1.0").iterdir())) == 1
    code, _, _ = run(["keypoints", str(youtube_sample[0][0]), "--model", tiny_model, "--out",
                      str(tmp_path / "new.d") + "/"], capsys)  # a new folder, said by its slash
    assert code == 0 and len(list((tmp_path / "new.d").iterdir())) == 1
