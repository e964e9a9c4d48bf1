"""What a keypoint training run trains on: youtube_faces_68 frames or a Kaggle 15-point CSV."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from keyface.data.paths import data_root
from keyface.keypoints.augment import AugmentConfig
from keyface.keypoints.training.dataset import Samples, youtube_samples
from keyface.keypoints.models import ModelConfig
from keyface.keypoints.training.train import TrainConfig

log = logging.getLogger(__name__)


def training_config(args) -> TrainConfig:
    """A TrainConfig from `keyface keypoints train` flags."""
    kaggle = bool(args.kaggle_csv)
    model = ModelConfig(arch=args.arch, input_size=96 if kaggle else args.input_size,
                        n_points=15 if kaggle else 68, width=args.width)
    return TrainConfig(model=model, augment=AugmentConfig(), scheme="kaggle15" if kaggle else "ibug68",
                       epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                       patience=args.patience, seed=args.seed)


def load_training_samples(args, cfg: TrainConfig, detector) -> tuple[Samples, str]:
    """The samples a run trains on and a one-line note saying what they are."""
    if args.kaggle_csv:
        samples = kaggle_samples(Path(args.kaggle_csv), args.missing)
        note = f"Kaggle-format CSV {args.kaggle_csv} ({len(samples)} rows kept, missing labels: {args.missing})"
    else:
        samples, note = youtube_training_samples(data_root(args.data), detector, args.include_devtest,
                                                 cfg.model.channels)
    if args.limit:
        samples = samples.subset(range(min(args.limit, len(samples))))
        note += f"; first {len(samples)} only"
    return samples, note


def youtube_training_samples(root: Path, detector, include_devtest: bool, channels: int) -> tuple[Samples, str]:
    """youtube_faces_68 training frames, without LFW DevTest people unless asked."""
    samples = youtube_samples(root, "train", detector, channels)
    note = f"youtube_faces_68 training frames ({detector.name} boxes)"
    if not include_devtest:
        from keyface.data.lfw import LFW
        devtest = set(LFW(root).people("DevTest"))
        keep = [i for i, p in enumerate(samples.people) if p not in devtest]
        note += f" of people outside LFW DevTest ({len(keep)} of {len(samples)} frames)"
        samples = samples.subset(keep)
    return samples, note


def kaggle_samples(csv_path: Path, missing: str) -> Samples:
    """Kaggle rows as samples (the 96x96 image is the crop), with missing labels handled as asked."""
    from keyface.data.kaggle import read_kaggle_csv
    images, points = read_kaggle_csv(csv_path)
    if missing == "drop":
        keep = ~np.isnan(points).any(axis=(1, 2))
        images, points = images[keep], points[keep]
    elif missing == "ffill":
        # the common Kaggle-kernel shortcut: copy each missing value from the row above
        flat = pd.DataFrame(points.reshape(len(points), -1)).ffill().bfill().to_numpy(np.float32)
        points = flat.reshape(points.shape)
    boxes = np.tile(np.array([0, 0, images.shape[2], images.shape[1]], np.float32), (len(images), 1))
    # Kaggle rows carry no identity: treat each row as its own "person" for the validation split
    ids = [f"row{i}" for i in range(len(images))]
    return Samples(list(images), boxes, points.astype(np.float32), ids, ids)
