"""The named embedders. Importing this module registers loaders only: no model is built or loaded."""
from __future__ import annotations

from pathlib import Path

from recognition.embedders import Registration, register

WEIGHTS = Path(__file__).resolve().parent / "weights"  # small default models shipped in the package


def _keypoints(path: Path):
    from recognition.approach_a import KeypointEmbedder
    return KeypointEmbedder(path)


def _geometry(path: Path):
    from recognition.geometry import GeometryEmbedder
    return GeometryEmbedder(path)


def _inception(path: Path):
    from inception_finetune.embedder import InceptionEmbedder
    return InceptionEmbedder(path)


def _facenet(path: Path):
    from facenet.embedder import FacenetEmbedder
    return FacenetEmbedder(path)


register(Registration("keypoints", "keypoints.keras", _keypoints,
                      "approach A: the keypoint net's penultimate features, fine-tuned with a softmax over identities",
                      [WEIGHTS / "keypoints.keras"]))
register(Registration("geometry", "geometry.keras", _geometry,
                      "baseline: LDA over aligned keypoint coordinates alone", [WEIGHTS / "geometry.keras"]))
register(Registration("inception", "inception.keras", _inception,
                      "approach B: Inception-v3 from ImageNet weights, fine-tuned on LFW DevTrain people "
                      "(made by `keyface train inception`; 87 MB, not shipped)"))
register(Registration("facenet", "facenet.keras", _facenet,
                      "approach C: FaceNet-style 128-d embedding trained with online triplet mining on LFW "
                      "DevTrain people", [WEIGHTS / "facenet.keras"]))
