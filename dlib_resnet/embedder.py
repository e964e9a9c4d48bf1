"""The `dlib-resnet` embedder: dlib's face descriptor on dlib's own 150 px face chip."""
from __future__ import annotations

from keyface.recognition.core.embedders import InputSpec, KerasFileEmbedder
# dlib's chip: 150 px, padding 0.25, cut by fitting 36 of the 68 keypoints to dlib's mean face
# (measured against MTCNN's 5 landmarks in docs/benchmarks.md)
SPEC = InputSpec(size=150, channels=3, zoom=1.0, shift_y=0.0, alignment="dlib68")


class DlibResnetEmbedder(KerasFileEmbedder):
    """dlib's ResNet (or C fine-tuned from it): 150x150 RGB chips in, 128-d unit vectors out."""
    name = "dlib-resnet"


class FacenetDlibEmbedder(KerasFileEmbedder):
    """Approach C fine-tuned from dlib-resnet (`keyface train facenet --source dlib-resnet`)."""
    name = "facenet-dlib"
