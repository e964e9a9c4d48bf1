"""Approach B at inference: pooled Inception-v3 features of the fine-tuned network (2048-d)."""
from __future__ import annotations

from keyface.recognition.core.embedders import KerasFileEmbedder


class InceptionEmbedder(KerasFileEmbedder):
    """The exported embedding model: raw RGB crops in, pooled features out (normalised by Embedder)."""
    name = "inception"
    batch = 32  # 160 px Inception activations are large
