"""The 68-point model shipped in the package finds real keypoints on real frames."""
import numpy as np
import pytest

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


@pytest.mark.parametrize("name", ["keypoints", "geometry"])
def test_shipped_embedders_load_and_embed_a_real_face(name, youtube_sample, tmp_path, monkeypatch):
    from recognition.embedders import load_embedder
    from recognition.pipeline import Face, align_batch
    monkeypatch.setenv("KEYFACE_MODELS", str(tmp_path))  # an empty models dir: the shipped files are used
    embedder = load_embedder(name)
    assert embedder.metadata["threshold"] > 0 and "no LFW DevTest person" in embedder.metadata["data"]
    path, points = youtube_sample[0]
    batch = align_batch(load_image(path), [Face((0, 0, 1, 1), 1.0, points)], embedder.spec)
    vector = embedder.embed(batch)
    assert vector.shape == (1, embedder.dim) and abs(np.linalg.norm(vector) - 1) < 1e-5
