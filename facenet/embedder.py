"""Approach C at inference: the triplet-trained 128-d embedding."""
from __future__ import annotations

from keyface.recognition.core.embedders import KerasFileEmbedder


class FacenetEmbedder(KerasFileEmbedder):
    """The exported embedding model: raw RGB crops in, 128-d unit vectors out."""
    name = "facenet"
