"""`keyface train facenet`: the triplet-trained embedding on DevTrain people, validated on held-out ones.

Every epoch scores verification on DevTrain people held out of training (accuracy at the best
threshold on those pairs, ROC AUC, TAR at FAR=1e-3): pairs of people the net trained on would hide
its overfitting. The best epoch is checkpointed and exported; only the embedding model is saved.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from keyface.facenet.model import FacenetConfig, TripletTrainer, build_embedding
from keyface.facenet.sampler import pk_dataset
from keyface.data.errors import KeyfaceError
from keyface.runtime.networks import save_model
from keyface.runtime.provenance import provenance
from keyface.keypoints.predictor import InputSpec
from keyface.recognition.training.face_sets import FaceSet, augment_faces
from keyface.recognition.core.verification import sample_pairs
from keyface.recognition.training.held_out import (VerificationMonitor, held_out_names, split_people,
                                                  verification_scores)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Triplet training: mining, P x K batches, epochs, learning rate, early stopping."""
    model: FacenetConfig = field(default_factory=FacenetConfig)
    mining: str = "batch-hard"
    margin: float = 0.2
    people_per_batch: int = 32
    faces_per_person: int = 4
    epochs: int = 30
    lr: float = 1e-3
    val_fraction: float = 0.1
    patience: int = 6
    seed: int = 0
    source: str = "none"  # "none": from scratch (`facenet`); "dlib-resnet": fine-tune it (`facenet-dlib`)
    source_model: str | None = None  # the source's model file (the CLI finds the installed or shipped one)

    @property
    def approach(self) -> str:
        """The embedder name the trained model is installed under."""
        return "facenet" if self.source == "none" else "facenet-dlib"

    @property
    def spec(self) -> InputSpec:
        """The aligned RGB crop the net takes (the source's own crop when fine-tuning one)."""
        if self.source == "dlib-resnet":
            from keyface.dlib_resnet.model import SPEC
            return SPEC
        return InputSpec(size=self.model.input_size, channels=3, zoom=self.model.zoom, shift_y=0.0)


# Fine-tuning a face-trained source: its features are good already, so small steps and few epochs.
FINETUNE_DEFAULTS = {"lr": 1e-5, "epochs": 4, "patience": 2, "people_per_batch": 16}


def build_start(cfg: TrainConfig) -> tuple[keras.Model, dict]:
    """The embedding network to train: a fresh one, or the source network with unit-length output."""
    if cfg.source == "none":
        return build_embedding(cfg.model), {}
    if cfg.source != "dlib-resnet":
        raise KeyfaceError(f"unknown source {cfg.source!r} for facenet: none | dlib-resnet")
    from keyface.runtime.networks import load_model
    if not cfg.source_model:
        raise KeyfaceError("fine-tuning dlib-resnet needs its model file (TrainConfig.source_model)")
    path = Path(cfg.source_model)
    source, meta = load_model(path, expect_kind="embedder")
    unit = keras.layers.UnitNormalization(name="embedding")(source.output)
    # the source's way of embedding (mirror averaging) goes with its weights
    return keras.Model(source.input, unit, name="facenet_dlib"), {
        "source": meta.get("source"), "source_version": path.name, "mirror_average": meta.get("mirror_average", False)}


def train_facenet(faces: FaceSet, cfg: TrainConfig, run_dir: Path, data_note: str) -> Path:
    """Train approach C on faces (DevTrain people only); write the run dir; return the embedder file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    (run_dir / "config.json").write_text(json.dumps({**asdict(cfg), "data": data_note, **provenance()}, indent=2))
    train, val = split_people(faces, cfg.val_fraction, cfg.seed)
    embedding, source_meta = build_start(cfg)
    steps = max(1, len(train) // (cfg.people_per_batch * cfg.faces_per_person))
    data = pk_dataset(train.crops, train.people.astype(str), cfg.people_per_batch, cfg.faces_per_person,
                      steps, cfg.seed, augment_faces)
    trainer = TripletTrainer(embedding, cfg.mining, cfg.margin)
    trainer.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        cfg.lr, cfg.epochs * steps, alpha=0.05)))

    def export() -> Path:
        meta = {"kind": "embedder", "approach": cfg.approach, "input": asdict(cfg.spec), "config": asdict(cfg),
                "data": data_note + ("; started from " + source_meta["source"] if source_meta else ""), **source_meta,
                "people": int(len(np.unique(train.people))), "train_faces": int(len(train)),
                "val_people": int(len(np.unique(val.people))), "held_out_people": held_out_names(val),
                "best_val_auc": monitor.best, **provenance()}
        return save_model(embedding, run_dir / "embedder.keras", meta)
    pairs = sample_pairs(val.people, 1000, cfg.seed)
    start = None
    if source_meta:  # the bar fine-tuning must clear: the source itself on the same held-out pairs
        start = verification_scores(embedding.predict(val.crops, verbose=0, batch_size=64), pairs)
        log.info("source on held-out people: AUC %.4f  accuracy %.4f  TAR@FAR1e-3 %.4f", start["auc"],
                 start["accuracy"], start["tar_at_far_1e-3"])
        source_meta["source_val"] = start
    monitor = VerificationMonitor(embedding, val.crops, pairs, export)
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience)
    trainer.fit(data, epochs=cfg.epochs, steps_per_epoch=steps, verbose=2, shuffle=False,
                callbacks=[monitor, stop, keras.callbacks.CSVLogger(str(run_dir / "metrics.csv"))])
    (run_dir / "summary.json").write_text(json.dumps({"best_val_auc": monitor.best, "source_val": start,
                                                      "epochs": monitor.history}, indent=2))
    return run_dir / "embedder.keras"  # written by the monitor at the best epoch
