"""Masked loss vs the usual fixes for missing labels, on a Kaggle-format file built from 68-point data."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keyface.data.kaggle import blank_like_kaggle, build_kaggle_from_68, write_kaggle_csv
from keyface.data.paths import data_root
from keyface.detection.mtcnn import MTCNNDetector
from keyface.keypoints.training.dataset import Samples, crop_all, youtube_samples
from keyface.keypoints.losses import nme
from keyface.keypoints.models import ModelConfig
from keyface.keypoints.predictor import KAGGLE15
from keyface.keypoints.training.train import TrainConfig, train
from keyface.keypoints.training.data_sets import kaggle_samples

log = logging.getLogger(__name__)

COLUMNS = [("strategy", "missing labels", "s"), ("rows", "rows used", "d"), ("labelled_fraction", "labels kept", ".2f"),
           ("val_nme", "val NME", ".4f"), ("test_nme", "test NME", ".4f"), ("train_seconds", "train s", ".0f")]


def build_kaggle_files(root: Path, detector, out: Path, seed: int) -> tuple[Path, Path]:
    """Kaggle-format train (labels blanked in Kaggle's pattern) and test (complete) CSVs."""
    paths = []
    for split in ("train", "test"):
        s = youtube_samples(root, split, detector, channels=1)
        images, points = build_kaggle_from_68(s.images, s.keypoints, s.boxes)
        if split == "train":
            points = blank_like_kaggle(points, np.random.default_rng(seed))
        path = out / f"kaggle-from-68-{split}.csv"
        write_kaggle_csv(path, images, points)
        paths.append(path)
    return paths[0], paths[1]


def run_missing_label_bench(args) -> dict:
    """Train one net per strategy for the same epochs; score each on the complete test labels."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = build_kaggle_files(data_root(args.data), MTCNNDetector(), out, seed=0)  # as published
    test = kaggle_samples(test_csv, "mask")
    x_test, _ = crop_all(test, 96)
    rows = []
    for strategy in ("mask", "drop", "ffill"):
        samples = kaggle_samples(train_csv, strategy)
        cfg = TrainConfig(model=ModelConfig(arch=args.arch, n_points=15, width=16), scheme="kaggle15",
                          epochs=args.epochs, patience=args.epochs)
        summary = train(samples, cfg, out / f"run-{strategy}", f"{train_csv.name} ({strategy})", verbose=2)
        rows.append({"strategy": strategy, "rows": len(samples),
                     "labelled_fraction": float(np.isfinite(samples.keypoints).mean()),
                     "val_nme": summary["best_val_nme"], "test_nme": _test_nme(out / f"run-{strategy}", x_test, test),
                     "train_seconds": summary["train_seconds"]})
    return {"protocol": ("Kaggle-format 96x96 grey crops built from youtube_faces_68 (MTCNN box rule); train "
                         "labels blanked like Kaggle's (70% of rows keep 4 of 15 points); test labels complete; "
                         "same net, epochs and seed for each strategy; NME over outer eye corners"),
            "train_csv": str(train_csv), "test_csv": str(test_csv), "epochs": args.epochs, "rows": rows}


def _test_nme(run_dir: Path, x_test: np.ndarray, test: Samples) -> float:
    """Mean NME of a run's model on the complete test labels."""
    from keyface.runtime.networks import load_model
    model, _ = load_model(run_dir / "model.keras", expect_kind="keypoints")
    pred = (np.asarray(model.predict(x_test, verbose=0)) + 0.5) * 96
    return float(nme(test.keypoints, pred, KAGGLE15.outer_eye_corners).mean())
