"""Train a keypoint net: tf.data, validation on held-out people, early stopping, checkpoints, resume."""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from keyface.keypoints.augment import AugmentConfig
from keyface.keypoints.training.dataset import Samples, crop_all, split_by_person, training_dataset
from keyface.keypoints.losses import NME, StandardisedL1
from keyface.runtime.networks import save_model
from keyface.runtime.provenance import provenance
from keyface.keypoints.models import ModelConfig, build_model
from keyface.keypoints.predictor import get_scheme

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a keypoint training run."""
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    scheme: str = "ibug68"
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 15
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of asdict."""
        aug = d["augment"] | {"scale": tuple(d["augment"]["scale"])}
        return cls(**(d | {"model": ModelConfig(**d["model"]), "augment": AugmentConfig(**aug)}))


def compile_model(model: keras.Model, cfg: TrainConfig, steps: int, shape_std: np.ndarray) -> None:
    """AdamW with a warm-up and cosine decay, standardised masked L1 loss, NME metric."""
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate * 0.1, decay_steps=max(1, cfg.epochs * steps), warmup_target=cfg.learning_rate,
        warmup_steps=min(steps * 2, cfg.epochs * steps // 4))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                  loss=StandardisedL1(shape_std), metrics=[NME(get_scheme(cfg.scheme).outer_eye_corners)])


def train(samples: Samples, cfg: TrainConfig, run_dir: Path, data_note: str, verbose: int | None = None) -> dict:
    """Train on samples (validation = held-out people), write the run dir, return its summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if verbose is None:  # a live progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stderr.isatty() else 2
    scheme = get_scheme(cfg.scheme)
    train_set, val_set = split_by_person(samples, cfg.val_fraction, cfg.seed)
    _write_run_config(run_dir, cfg, data_note, len(train_set), len(val_set))
    keras.utils.set_random_seed(cfg.seed)
    prior = shape_prior(train_set, cfg.model.input_size)
    model = build_model(cfg.model, prior)
    steps = int(np.ceil(len(train_set) / cfg.batch_size))
    compile_model(model, cfg, steps, prior[1])
    x_val, y_val = crop_all(val_set, cfg.model.input_size)
    started = time.perf_counter()
    history = model.fit(
        training_dataset(train_set, cfg.model.input_size, scheme, cfg.batch_size, cfg.seed, cfg.augment),
        steps_per_epoch=steps, validation_data=(x_val, y_val), epochs=cfg.epochs, shuffle=False,
        verbose=verbose, callbacks=_callbacks(run_dir, cfg))
    seconds = time.perf_counter() - started
    summary = {"train_seconds": round(seconds, 1), "epochs_run": len(history.history["loss"]),
               "best_val_nme": float(min(history.history["val_nme"])), "train_samples": len(train_set),
               "val_samples": len(val_set)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    meta = {"kind": "keypoints", "scheme": cfg.scheme, "config": asdict(cfg), "data": data_note,
            "summary": summary, **provenance()}
    save_model(model, run_dir / "model.keras", meta)
    return summary


def shape_prior(samples: Samples, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the un-augmented training shapes in crop units (missing labels ignored)."""
    _, y = crop_all(samples, size)
    mean = np.nan_to_num(np.nanmean(y, axis=0), nan=0.0)
    # a point that is never labelled (or never moves) still needs a usable, non-zero scale
    std = np.nan_to_num(np.nanstd(y, axis=0), nan=0.1)
    return mean.astype(np.float32), np.maximum(std, 0.01).astype(np.float32)


def _callbacks(run_dir: Path, cfg: TrainConfig) -> list:
    """Checkpoint the best model, back up every epoch for resume, stop early, log metrics."""
    return [keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
            keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor="val_nme", mode="min",
                                            save_best_only=True),
            keras.callbacks.EarlyStopping(monitor="val_nme", mode="min", patience=cfg.patience, restore_best_weights=True),
            keras.callbacks.CSVLogger(str(run_dir / "metrics.csv"), append=True)]


def _write_run_config(run_dir: Path, cfg: TrainConfig, data_note: str, n_train: int, n_val: int) -> None:
    """Record the config, data and provenance once (a resumed run keeps the original)."""
    path = run_dir / "config.json"
    if not path.exists():
        path.write_text(json.dumps({"config": asdict(cfg), "data": data_note, "train_samples": n_train,
                                    "val_samples": n_val, **provenance()}, indent=2, default=str))
