"""The 68-point model shipped in the package finds real keypoints on real frames."""
import numpy as np

from data.images import load_image
from keypoints.detector import MTCNNDetector
from keypoints.losses import nme
from keypoints.predictor import KeypointPredictor, default_model_path
from keypoints.schemes import IBUG68


def test_shipped_model_is_accurate_on_the_sample_frames(youtube_sample):
    predictor = KeypointPredictor.load(default_model_path())
    detector = MTCNNDetector()
    truth, pred = [], []
    for path, points in youtube_sample:
        rgb = load_image(path)
        faces = detector.detect(rgb)
        assert len(faces) >= 1
        pred.append(predictor.predict(rgb, [faces[0].box])[0])
        truth.append(points)
    errors = nme(np.array(truth), np.array(pred), IBUG68.outer_eye_corners)
    assert errors.mean() < 0.1, errors  # dlib's predictor averages 0.07 on this test split


def test_shipped_model_metadata_records_how_it_was_made():
    from keypoints.modelfile import read_metadata
    meta = read_metadata(default_model_path())
    assert meta["kind"] == "keypoints" and meta["scheme"] == "ibug68"
    assert "keypoints train" in meta["command"] and "DevTest" in meta["data"]
    assert meta["summary"]["train_seconds"] < 45 * 60
