"""Approach C's networks: a compact residual embedding net, and the triplet training wrapper around it.

Only the embedding model is exported; the wrapper exists to override `train_step` with the triplet
loss and online mining (as keras-io's siamese example does).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keyface.facenet.losses import MARGIN, triplet_loss


@dataclass
class FacenetConfig:
    """The embedding network: input crop, residual stages, embedding size."""
    input_size: int = 96
    zoom: float = 0.85  # aligned crop framing (see recognition.align.template)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 2, 1)
    embedding_dim: int = 128
    dropout: float = 0.2
    weight_decay: float = 5e-4


def _conv_bn(x, filters: int, stride: int, name: str, decay: float, relu: bool = True):
    """3x3 conv, BatchNorm, optional ReLU; L2-regularised kernel."""
    x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv",
                            kernel_regularizer=keras.regularizers.L2(decay))(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _residual(x, filters: int, stride: int, name: str, decay: float):
    """A basic residual block (two 3x3 convs), projected shortcut where the shape changes."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = _conv_bn(x, filters, stride, f"{name}_a", decay)
    x = _conv_bn(x, filters, 1, f"{name}_b", decay, relu=False)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, shortcut]))


def build_embedding(cfg: FacenetConfig) -> keras.Model:
    """Raw RGB crops (0..255) -> residual stages -> 128-d L2-normalised embedding."""
    image = keras.Input((cfg.input_size, cfg.input_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scaling")(image)
    x = _conv_bn(x, cfg.widths[0], 2, "stem", cfg.weight_decay)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (width, count) in enumerate(zip(cfg.widths, cfg.blocks)):
        for block in range(count):
            x = _residual(x, width, 2 if block == 0 and stage > 0 else 1, f"s{stage}b{block}", cfg.weight_decay)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    x = keras.layers.Dense(cfg.embedding_dim, use_bias=False, name="projection")(x)
    x = keras.layers.BatchNormalization(name="projection_bn")(x)
    return keras.Model(image, keras.layers.UnitNormalization(name="embedding")(x), name="facenet")


class TripletTrainer(keras.Model):
    """Wraps the embedding model; each step mines triplets inside the P x K batch."""

    def __init__(self, embedding: keras.Model, mining: str = "batch-hard", margin: float = MARGIN):
        super().__init__()
        self.embedding, self.mining, self.margin = embedding, mining, margin
        self.loss_fn = triplet_loss(mining)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, images, training=False):
        """The embeddings."""
        return self.embedding(images, training=training)

    def train_step(self, data):
        """Embed the batch, mine, step on the triplet loss plus weight decay."""
        images, labels = data
        with tf.GradientTape() as tape:
            vectors = self.embedding(images, training=True)
            loss = self.loss_fn(labels, vectors, self.margin) + tf.add_n([0.0, *self.embedding.losses])
        variables = self.embedding.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        """The running loss (reset each epoch)."""
        return [self.loss_tracker]
