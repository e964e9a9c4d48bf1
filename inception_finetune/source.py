"""Google's ImageNet Inception-v3, checked and converted once, offline, into a keyface .keras base."""
from __future__ import annotations

from pathlib import Path


def convert(pt_path: Path, target: Path) -> Path:
    """Check pt_path (SHA-1, 94 conv/BN shapes) and save it as a keyface .keras base model."""
    from keyface.inception_finetune.imagenet import SHA1, SOURCE_NAME, checked_weights
    from keyface.inception_finetune.model import FID_SCALING, build_base, set_imagenet_groups
    from keyface.runtime.networks import save_model
    from keyface.runtime.provenance import provenance
    groups = checked_weights(pt_path)
    base = build_base(max_pool_mixed10=True)
    set_imagenet_groups(base, groups)
    meta = {"kind": "inception-base", "source": SOURCE_NAME, "sha1": SHA1, **FID_SCALING,
            "mixed10_pool": "max", **provenance()}
    return save_model(base, target, meta)
