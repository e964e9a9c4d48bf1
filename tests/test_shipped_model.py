"""The 68-point model shipped in the package finds real keypoints on real frames."""
import numpy as np
import pytest

from keyface.data.images import load_image
from keyface.detection.mtcnn import MTCNNDetector
from keyface.keypoints.losses import nme
from keyface.keypoints.predictor import IBUG68, KeypointPredictor, default_model_path


def test_shipped_model_is_accurate_on_the_sample_frames(youtube_sample):
    predictor = KeypointPredictor.load(default_model_path())
    detector = MTCNNDetector()
    truth, pred = [], []
    for path, points in youtube_sample:
        rgb = load_image(path)
        faces = detector.detect(rgb)
        assert len(faces) >= 1
        pred.append(predictor.predict(rgb, [max(faces, key=lambda f: f.size).box])[0])
        truth.append(points)
    errors = nme(np.array(truth), np.array(pred), IBUG68.outer_eye_corners)
    assert errors.mean() < 0.1, errors  # dlib's predictor averages 0.07 on this test split


def test_shipped_model_metadata_records_how_it_was_made():
    from keyface.runtime.networks import read_metadata
    meta = read_metadata(default_model_path())
    assert meta["kind"] == "keypoints" and meta["scheme"] == "ibug68"
    assert "keypoints train" in meta["command"] and "DevTest" in meta["data"]
    assert meta["summary"]["train_seconds"] < 45 * 60


@pytest.mark.parametrize("name", ["keypoints", "geometry"])
def test_shipped_embedders_load_and_embed_a_real_face(name, youtube_sample, tmp_path, monkeypatch):
    from keyface.recognition.approaches.registry import load_embedder
    from keyface.keypoints.predictor import align_batch
    from keyface.recognition.core.pipeline import Face
    monkeypatch.setenv("KEYFACE_MODELS", str(tmp_path))  # an empty models dir: the shipped files are used
    embedder = load_embedder(name)
    assert embedder.metadata["threshold"] > 0 and "no LFW DevTest person" in embedder.metadata["data"]
    path, points = youtube_sample[0]
    batch = align_batch(load_image(path), [Face((0, 0, 1, 1), 1.0, points)], embedder.spec)
    vector = embedder.embed(batch)
    assert vector.shape == (1, embedder.dim) and abs(np.linalg.norm(vector) - 1) < 1e-5


def test_the_default_embedder_tells_real_people_apart(tmp_path, monkeypatch):
    """dlib-resnet (the default) on LFW photos of the demo's people: every photo is nearer to another of
    the same person than to anyone else, and the shipped cuts name them and keep strangers out."""
    from keyface.keypoints.predictor import KeypointPredictor
    from keyface.recognition.cli.demo import demo_root
    from keyface.recognition.approaches.registry import load_embedder
    from keyface.keypoints.predictor import align_batch
    from keyface.recognition.core.pipeline import FacePipeline
    from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER
    monkeypatch.setenv("KEYFACE_MODELS", str(tmp_path))
    embedder = load_embedder(DEFAULT_EMBEDDER)
    meta = embedder.metadata
    assert DEFAULT_EMBEDDER == "dlib-resnet" and meta["lfw_people_in_training"] is False
    assert 0 < meta["identify_threshold"] < meta["threshold"] and meta["identify_far"] == 0.01
    pipeline = FacePipeline(KeypointPredictor.load(default_model_path()))
    people, vectors = [], []
    for folder in sorted((demo_root() / "gallery").iterdir())[:4]:
        for photo in sorted(folder.iterdir())[:3]:
            rgb = load_image(photo)
            faces = pipeline.find_faces(rgb)
            largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            vectors.append(embedder.embed(align_batch(rgb, [largest], embedder.spec))[0])
            people.append(folder.name)
    people, vectors = np.array(people), np.array(vectors)
    distances = 1 - vectors @ vectors.T
    same = people[:, None] == people[None, :]
    np.fill_diagonal(same, False)
    other = people[:, None] != people[None, :]
    assert distances[same].max() < distances[other].min()
    assert (distances[other] > meta["identify_threshold"]).all()
