"""Approach B training: Inception-v3's final layer replaced by a softmax over our people, fine-tuned.

Stage 1 trains the new head with the base frozen (BatchNorm in inference mode) on cached
bottleneck features, so it takes seconds. Stage 2 fine-tunes the top inception blocks (after
`finetune_from`) and the head at a low rate, on cached activations of the frozen lower blocks
(`augment_copies` augmented copies of each face: a forward pass of the frozen blocks per step
would cost several times the CPU). Validation is verification AUC on DevTrain people held out
of training; the best epoch is kept and checkpointed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.inception_finetune.model import HEAD, build_classifier, embedding_model, load_source_base, pixel_classifier
from keyface.runtime.networks import save_model
from keyface.runtime.provenance import provenance
from keyface.keypoints.predictor import InputSpec
from keyface.recognition.training.face_sets import FaceSet
from keyface.recognition.core.verification import sample_pairs
from keyface.recognition.training.held_out import VerificationMonitor, held_out_names, split_people

log = logging.getLogger(__name__)
CLASSIFIER_FILE = "classifier.keras"  # pixels -> one probability per training person (`keyface classify`)


def classifier_path(models: str | Path | None = None) -> Path:
    """Where the classifier of the last training is installed: MODELS/inception/classifier.keras."""
    from keyface.data.paths import models_dir
    return models_dir(models) / "inception" / CLASSIFIER_FILE


@dataclass
class InceptionConfig:
    """Approach B: input size, weight source, the two stages' epochs and rates, regularisation."""
    input_size: int = 160  # 299 is Inception's native size; 160 makes 2-core CPU training practical
    zoom: float = 0.8  # aligned crop framing (see recognition.align.template)
    weights: str = "imagenet"
    finetune_from: str = "mixed8"  # blocks after this layer are fine-tuned in stage 2
    head_epochs: int = 20
    finetune_epochs: int = 12
    batch_size: int = 64
    head_lr: float = 1e-3
    finetune_lr: float = 1e-4
    augment_copies: int = 2  # cached activations of each training face, each randomly mirrored, shifted, lit
    dropout: float = 0.3
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0

    @property
    def spec(self) -> InputSpec:
        """The aligned RGB crop this model takes."""
        return InputSpec(size=self.input_size, channels=3, zoom=self.zoom, shift_y=0.0)


def check_people(people: np.ndarray) -> None:
    """A classifier needs two people or more, each with two photos or more (one to learn, one to check)."""
    names, counts = np.unique(people, return_counts=True)
    if len(names) < 2:
        raise KeyfaceError(f"fine-tuning needs at least 2 people, found {len(names)}")
    thin = names[counts < 2]
    if len(thin):
        raise KeyfaceError(f"{len(thin)} person(s) have a single photo (e.g. {thin[0]!r}); "
                           "each needs at least 2")


def _with_two_faces_or_more(faces: FaceSet) -> FaceSet:
    """Leave out people left with one face after detection (a photo with no face found), saying so."""
    names, counts = np.unique(faces.people, return_counts=True)
    thin = set(names[counts < 2])
    if thin:
        log.warning("%d people have a single detected face and are left out: %s", len(thin), ", ".join(sorted(thin)))
    return faces.subset(np.array([p not in thin for p in faces.people], bool))


def activations(model: keras.Model, crops: np.ndarray, batch: int = 64, augment: bool = False) -> np.ndarray:
    """model(crops) in batches, float16 to halve the cache; each crop freshly augmented if augment."""
    import tensorflow as tf
    from tqdm import tqdm
    from keyface.recognition.training.face_sets import augment_faces
    fn = tf.function(lambda t: model(t, training=False))
    out = []
    for i in tqdm(range(0, len(crops), batch), desc="bottleneck" + (" (augmented)" if augment else ""), unit="batch"):
        x = crops[i: i + batch].astype(np.float32)
        out.append(np.asarray(fn(augment_faces(x, None)[0] if augment else x), np.float16))
    return np.concatenate(out)


def _split(base: keras.Model, at: str) -> tuple[keras.Model, keras.Model]:
    """(frozen lower part: scaled pixels -> `at`, trainable upper part: `at` -> pooled features)."""
    cut = base.get_layer(at).output
    return keras.Model(base.input, cut), keras.Model(cut, base.output)


def _dataset(features: np.ndarray, labels: np.ndarray, batch: int, seed: int):
    """tf.data over cached activations and labels, shuffled each epoch."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(len(labels), seed=seed)
    return ds.batch(batch).prefetch(2)


def train_inception(faces: FaceSet, cfg: InceptionConfig, run_dir: Path, data_note: str,
                    models: Path | None = None) -> Path:
    """Fine-tune approach B on faces (DevTrain people only); write the run dir; return the embedder file."""
    kept = _with_two_faces_or_more(faces)
    check_people(kept.people)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    base, info = load_source_base(cfg.weights, models)
    log.info("source weights: %s", info["source"])
    (run_dir / "config.json").write_text(json.dumps({**asdict(cfg), **info, "data": data_note, **provenance()},
                                                    indent=2))
    train, val = split_people(faces, cfg.val_fraction, cfg.seed)  # calibration reads the held-out names
    train = train.subset(np.isin(train.people, kept.people))
    names = np.unique(train.people)
    labels = np.searchsorted(names, train.people).astype(np.int32)
    scale = embedding_model(base, info).get_layer("scaling")
    lower, upper = _split(base, cfg.finetune_from)
    scaled = keras.Sequential([scale, lower])
    train_x = np.concatenate([activations(scaled, train.crops, augment=True) for _ in range(cfg.augment_copies)])
    train_y = np.concatenate([labels] * cfg.augment_copies)
    val_x = activations(scaled, val.crops)
    classifier = build_classifier(upper, len(names), cfg.dropout)

    def export() -> Path:
        meta = _metadata(cfg, info, data_note, names, len(train), held_out_names(val), monitor.best)
        return save_model(embedding_model(base, info), run_dir / "embedder.keras", meta)
    monitor = VerificationMonitor(upper, val_x, sample_pairs(val.people, 600, cfg.seed), export)
    monitor.on_epoch_end(-1)  # the source's own features: the baseline fine-tuning has to beat
    _train_head(classifier, upper.predict(train_x, batch_size=256, verbose=0), train_y, cfg, run_dir)
    _fit(classifier, upper, cfg, train_x, train_y, run_dir,
         [monitor, keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience)])
    upper.set_weights(monitor.best_weights)  # the classifier below shares these layers
    path = run_dir / "embedder.keras"  # written by the monitor at the best epoch
    save_model(pixel_classifier(base, info, classifier.get_layer(HEAD)), run_dir / CLASSIFIER_FILE,
               {"kind": "inception-classifier", "people": names.tolist(), "input": asdict(cfg.spec), **info,
                "data": data_note, **provenance()})
    (run_dir / "summary.json").write_text(json.dumps({"best_val_auc": monitor.best, "people": len(names),
                                                      "train_faces": len(train)}, indent=2))
    return path


def _compile(model: keras.Model, lr: float, cfg: InceptionConfig) -> None:
    """AdamW and label-smoothed cross-entropy."""
    model.compile(keras.optimizers.AdamW(lr, weight_decay=1e-4),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])


def _onehot(y: np.ndarray, n: int) -> np.ndarray:
    """One-hot float16 labels (label smoothing needs the categorical loss)."""
    return keras.utils.to_categorical(y, n).astype(np.float16)


def _train_head(classifier: keras.Model, pooled: np.ndarray, y: np.ndarray, cfg: InceptionConfig,
                run_dir: Path) -> None:
    """Stage 1: the new final layer alone, on cached pooled features; copied into the classifier."""
    n = classifier.output_shape[-1]
    head = keras.Sequential([keras.Input(pooled.shape[1:]), keras.layers.Dropout(cfg.dropout),
                             keras.layers.Dense(n, activation="softmax", name=HEAD)])
    _compile(head, cfg.head_lr, cfg)
    head.fit(_dataset(pooled, _onehot(y, n), cfg.batch_size, cfg.seed), epochs=cfg.head_epochs, verbose=2, shuffle=False,
             callbacks=[keras.callbacks.CSVLogger(str(run_dir / "metrics-head.csv"))])
    classifier.get_layer(HEAD).set_weights(head.get_layer(HEAD).get_weights())


def _fit(classifier: keras.Model, upper: keras.Model, cfg: InceptionConfig, x, y, run_dir: Path,
         callbacks: list) -> None:
    """Stage 2: the upper blocks and the head at a low rate; BatchNorm stays in inference mode."""
    for layer in upper.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    _compile(classifier, cfg.finetune_lr, cfg)
    data = _dataset(x, _onehot(y, classifier.output_shape[-1]), cfg.batch_size, cfg.seed)
    classifier.fit(data, epochs=cfg.finetune_epochs, verbose=2, shuffle=False,
                   callbacks=[*callbacks, keras.callbacks.CSVLogger(str(run_dir / "metrics-finetune.csv"))])


def _metadata(cfg: InceptionConfig, info: dict, data_note: str, names, n_train: int, held_out: list[str],
              best: float) -> dict:
    """What the exported embedder file says about itself."""
    return {"kind": "embedder", "approach": "inception", "input": asdict(cfg.spec), "config": asdict(cfg),
            **info, "data": data_note, "people": int(len(names)), "train_faces": int(n_train),
            "val_people": len(held_out), "held_out_people": held_out, "best_val_auc": best, **provenance()}
