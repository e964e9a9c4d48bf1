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


def _dlib_resnet(path: Path):
    from dlib_resnet.embedder import DlibResnetEmbedder
    return DlibResnetEmbedder(path)


def _facenet_dlib(path: Path):
    from dlib_resnet.embedder import FacenetDlibEmbedder
    return FacenetDlibEmbedder(path)


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
register(Registration("dlib-resnet", "dlib-resnet.keras", _dlib_resnet,
                      "dlib's ResNet face descriptor converted to Keras (outside data: ~3M faces of ~7,500 people, "
                      "no LFW person; public domain)", [WEIGHTS / "dlib-resnet.keras"], "keyface weights dlib-resnet"))
register(Registration("facenet-dlib", "facenet-dlib.keras", _facenet_dlib,
                      "approach C's triplet training started from dlib-resnet, fine-tuned on LFW DevTrain people "
                      "(made by `keyface train facenet --source dlib-resnet`; not shipped)",
                      made_by="keyface train facenet --source dlib-resnet"))

EMBEDDER_NAMES = ("dlib-resnet", "facenet-dlib", "facenet", "keypoints", "geometry", "inception")
# the best measured on held-out people (docs/benchmarks.md); every command's default
DEFAULT_EMBEDDER = "dlib-resnet"
