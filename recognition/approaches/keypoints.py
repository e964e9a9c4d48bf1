"""Approach A: the keypoint net without its output layer, a softmax over identities on top.

Train the head with the backbone frozen, then fine-tune everything; the exported embedder is the
backbone up to the penultimate (`embedding`) layer. Validation is verification on DevTrain people
held out of training, because accuracy on people the net was trained on hides its overfitting.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from keyface.runtime.networks import load_model, save_model
from keyface.runtime.provenance import provenance
from keyface.keypoints.models import EMBEDDING_LAYER
from keyface.keypoints.predictor import InputSpec
from keyface.recognition.core.pipeline import KerasFileEmbedder
from keyface.recognition.core.verification import sample_pairs
from keyface.recognition.training.face_sets import FaceSet
from keyface.recognition.training.held_out import VerificationMonitor, held_out_names, split_people

log = logging.getLogger(__name__)

# The keypoint net's input, framed like its training crops: there the eyes are ~24 px apart and
# ~30 px from the top of 96 px; the 5-point template lands them there with this zoom and shift.
SPEC = InputSpec(size=96, channels=1, zoom=0.8, shift_y=-0.155)


@dataclass
class IdentityConfig:
    """Approach A training: head epochs (backbone frozen), fine-tune epochs, rates, regularisation."""
    head_epochs: int = 4
    finetune_epochs: int = 12
    batch_size: int = 64
    head_lr: float = 3e-3
    finetune_lr: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    val_fraction: float = 0.1
    patience: int = 4
    seed: int = 0


class KeypointEmbedder(KerasFileEmbedder):
    """Approach A at inference: the fine-tuned keypoint backbone's penultimate features."""
    name = "keypoints"


def build_models(keypoint_model, n_people: int, dropout: float):
    """(embedding model, classifier): the keypoint net cut at EMBEDDING_LAYER, plus a softmax."""
    embedding = keras.Model(keypoint_model.input, keypoint_model.get_layer(EMBEDDING_LAYER).output, name="embedder")
    x = keras.layers.Dropout(dropout, name="identity_dropout")(embedding.output)
    probs = keras.layers.Dense(n_people, activation="softmax", name="identity")(x)
    return embedding, keras.Model(embedding.input, probs, name="identity_classifier")


def _dataset(faces: FaceSet, labels: np.ndarray, batch: int, seed: int):
    """tf.data of (crop, label) with flips, small shifts and brightness changes."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((faces.crops, labels)).shuffle(len(labels), seed=seed)

    def augment(x, y):
        x = tf.cast(x, tf.float32)
        x = tf.image.random_flip_left_right(x, seed=seed)
        size = tf.shape(x)[0]
        x = tf.image.random_crop(tf.image.resize_with_crop_or_pad(x, size + 8, size + 8), tf.shape(x), seed=seed)
        x = tf.clip_by_value(x * tf.random.uniform([], 0.8, 1.2) + tf.random.uniform([], -20.0, 20.0), 0, 255)
        return x, y
    return ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(2)


def train_approach_a(faces: FaceSet, keypoint_model_path: Path, cfg: IdentityConfig, run_dir: Path,
                     data_note: str) -> Path:
    """Train approach A on faces (DevTrain people only); write the run dir; return the embedder file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    train, val = split_people(faces, cfg.val_fraction, cfg.seed)
    names = np.unique(train.people)
    labels = np.searchsorted(names, train.people).astype(np.int32)
    kp_model, kp_meta = load_model(keypoint_model_path, expect_kind="keypoints")
    embedding, classifier = build_models(kp_model, len(names), cfg.dropout)
    pairs = sample_pairs(val.people, 600, cfg.seed)
    monitor = VerificationMonitor(embedding, val.crops.astype(np.float32), pairs)
    data = _dataset(train, labels, cfg.batch_size, cfg.seed)
    loss = keras.losses.SparseCategoricalCrossentropy()
    for stage, epochs, lr, trainable in (("head", cfg.head_epochs, cfg.head_lr, False),
                                         ("finetune", cfg.finetune_epochs, cfg.finetune_lr, True)):
        for layer in embedding.layers:
            layer.trainable = trainable
        classifier.compile(keras.optimizers.AdamW(lr, weight_decay=1e-4), loss=loss, metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience)
        classifier.fit(data, epochs=epochs, verbose=2, shuffle=False, callbacks=[monitor, stop,
                       keras.callbacks.CSVLogger(str(run_dir / f"metrics-{stage}.csv"))])
    embedding.set_weights(monitor.best_weights)
    meta = {"kind": "embedder", "approach": "keypoints", "input": asdict(SPEC), "config": asdict(cfg),
            "data": data_note, "keypoint_model": kp_meta.get("git_revision"), "people": int(len(names)),
            "train_faces": int(len(train)), "val_people": int(len(np.unique(val.people))),
            "held_out_people": held_out_names(val),
            "best_val_auc": monitor.best, **provenance()}
    (run_dir / "summary.json").write_text(json.dumps(meta, indent=2, default=str))
    return save_model(embedding, run_dir / "embedder.keras", meta)
