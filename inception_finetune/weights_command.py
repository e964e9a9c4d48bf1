"""`keyface weights inception-imagenet`: convert Google's ImageNet Inception-v3 once, offline."""
from __future__ import annotations

import logging
from pathlib import Path

from data.errors import KeyfaceError
from data.paths import models_dir

log = logging.getLogger(__name__)

IMAGENET_FILE = "inception-v3-imagenet.keras"


def imagenet_model_path(models: str | Path | None = None) -> Path:
    """Where the converted ImageNet base lives: MODELS/inception/inception-v3-imagenet.keras."""
    return models_dir(models) / "inception" / IMAGENET_FILE


def cmd_weights(args) -> int:
    """Verify and convert the ImageNet weights into the models directory."""
    target = imagenet_model_path(args.models)
    if target.is_file() and not args.force:
        log.info("already converted: %s (use --force to redo)", target)
        return 0
    from inception_finetune.imagenet import wheel_weights_file
    pt_path = Path(args.source) if args.source else wheel_weights_file()
    if not pt_path.is_file():
        raise KeyfaceError(f"weights file not found: {pt_path}")
    convert(pt_path, target)
    log.info("ImageNet Inception-v3 weights verified and converted: %s", target)
    return 0


def convert(pt_path: Path, target: Path) -> Path:
    """Check pt_path (SHA-1, 94 conv/BN shapes) and save it as a keyface .keras base model."""
    from inception_finetune.imagenet import SHA1, SOURCE_NAME, checked_weights
    from inception_finetune.model import FID_SCALING, build_base, set_imagenet_groups
    from keypoints.modelfile import provenance, save_model
    groups = checked_weights(pt_path)
    base = build_base(max_pool_mixed10=True)
    set_imagenet_groups(base, groups)
    meta = {"kind": "inception-base", "source": SOURCE_NAME, "sha1": SHA1, **FID_SCALING,
            "mixed10_pool": "max", **provenance()}
    return save_model(base, target, meta)
