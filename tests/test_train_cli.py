"""`keyface keypoints train` end to end on a tiny Kaggle-format file: run directory, metrics, model, resume."""
import json

import numpy as np
import pandas as pd
import pytest

from keyface.data.images import load_image
from keyface.data.kaggle import build_kaggle_from_68, write_kaggle_csv
from keyface.runtime.networks import load_model
from keyface.recognition.cli.main import main


def tiny_kaggle_csv(path, youtube_sample):
    """16 rows built from the 4 real sample frames (boxes around their keypoints), some labels blanked."""
    images, points, boxes = [], [], []
    for frame, kp in youtube_sample:
        (x0, y0), (x1, y1) = kp.min(0), kp.max(0)
        side = 1.3 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        images.append(load_image(frame))
        points.append(kp)
        boxes.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    crops, kp15 = build_kaggle_from_68(images * 4, np.array(points * 4), np.array(boxes * 4, np.float32))
    kp15[::3, 2:10] = np.nan  # some rows miss most points, as in Kaggle's file
    write_kaggle_csv(path, crops, kp15)
    return path


@pytest.mark.slow
def test_train_writes_a_complete_run_directory_and_resumes(tmp_path, youtube_sample, capsys):
    csv = tiny_kaggle_csv(tmp_path / "kaggle.csv", youtube_sample)
    run_dir = tmp_path / "run"
    argv = ["keypoints", "train", "--kaggle-csv", str(csv), "--epochs", "2", "--width", "8", "--batch-size", "8",
            "--run-dir", str(run_dir), "--models", str(tmp_path / "models"), "--name", "tiny"]
    assert main(argv) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["scheme"] == "kaggle15" and "git_revision" in config and "mask" in config["data"]
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 2
    model, meta = load_model(tmp_path / "models" / "keypoints" / "tiny.keras", expect_kind="keypoints")
    assert model.output_shape == (None, 15, 2) and meta["summary"]["epochs_run"] == 2
    assert main(["keypoints", "train", "--resume", str(run_dir), "--kaggle-csv", str(csv)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["created"] == config["created"]  # kept


def test_resume_of_a_non_run_directory_is_one_line(tmp_path, capsys):
    assert main(["keypoints", "train", "--resume", str(tmp_path)]) == 2
    assert "not a keypoint run directory" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "geometry", "--lr", "0.1"], "--lr is not a setting of `keyface train geometry`"),
    (["train", "keypoints", "--mining", "semi-hard"], "--mining is not a setting of `keyface train keypoints`"),
    (["train", "keypoints", "--folders", "."], "--folders is for `keyface train inception`"),
    (["train", "inception", "--source", "dlib-resnet"], "--source is for `keyface train facenet`"),
])
def test_settings_an_approach_does_not_read_are_refused(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("approach, way", [("geometry", "calibrate one you trained (`keyface train geometry`)"),
                                           ("dlib-resnet", "it is used as shipped")])
def test_calibrate_never_rewrites_a_shipped_model(tmp_path, approach, way, capsys):
    """Its version (a gallery's key) follows the file: rewriting the package's own would lock out every gallery."""
    import hashlib
    from keyface.recognition.approaches.registry import registered
    shipped = registered(approach).shipped[0]
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert main(["calibrate", approach, "--models", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"is the {approach} model shipped with keyface, calibrated already" in err and way in err
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
