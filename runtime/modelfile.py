"""`.keras` model files that carry keyface's metadata (what made them, on what data) inside."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

from keyface.data.errors import KeyfaceError

META_ENTRY = "keyface.json"  # an extra zip entry: Keras ignores it, we read it without loading weights
LITE_ENTRY = "network.tflite"  # a LiteRT model file: the metadata and this flatbuffer, no Keras network
LITE_SUFFIX = ".litert"


def git_revision() -> str:
    """The current git commit of the keyface checkout (with '+dirty' if modified), or 'unknown'."""
    here = Path(__file__).resolve().parent
    if not (here.parent / "setup.cfg").is_file():  # an installed copy: the git around it is not keyface's
        return "unknown"
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def keyface_version() -> str:
    """The installed keyface distribution's version ('unknown' when run from a bare checkout)."""
    import importlib.metadata
    try:
        return importlib.metadata.version("keyface")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance() -> dict:
    """Who made an artefact: command line, keyface version, git revision, UTC time."""
    return {"command": " ".join(["keyface", *sys.argv[1:]]) if sys.argv else "", "keyface_version": keyface_version(),
            "git_revision": git_revision(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def save_model(model, path: Path, metadata: dict) -> Path:
    """Save a Keras model as .keras with metadata embedded; written to a temp file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.keras")
    if getattr(model, "optimizer", None) is not None:
        model = _without_training_state(model)
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as zf:
        zf.writestr(META_ENTRY, json.dumps(metadata, indent=2, default=str))
    tmp.replace(path)
    return path


def _without_training_state(model):
    """An uncompiled copy with the same weights: shipped files need no optimizer state (3x smaller)."""
    # get_config() leaves out the compile config; clone_model and to_json would bring the optimizer back
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def read_metadata(path: Path, expect_kind: str | None = None) -> dict:
    """Read the keyface metadata of a model file without loading the model; refuse files of another kind."""
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(META_ENTRY))
    except FileNotFoundError:
        raise KeyfaceError(f"model file not found: {path}") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, zlib.error, UnicodeDecodeError):
        raise KeyfaceError(f"{path} is not a keyface model file (.keras with keyface metadata)") from None
    if expect_kind and meta.get("kind") != expect_kind:
        raise KeyfaceError(f"{path} is a {meta.get('kind', 'unknown')!r} model, not a {expect_kind!r} model")
    return meta


def save_lite_model(flatbuffer: bytes, path: Path, metadata: dict) -> Path:
    """Write a LiteRT model file: a zip of keyface's metadata and a flatbuffer of built-in operators only."""
    # what ships when a network's float32 .keras is too large: int8 weights are a quarter of the size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META_ENTRY, json.dumps(metadata, indent=2, default=str))
        zf.writestr(LITE_ENTRY, flatbuffer)
    tmp.replace(path)
    return path


def lite_flatbuffer(path: Path) -> bytes | None:
    """The flatbuffer a LiteRT model file holds; None for a .keras file (converted at load instead)."""
    if Path(path).suffix != LITE_SUFFIX:
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(LITE_ENTRY)
    except (OSError, zipfile.BadZipFile, KeyError, zlib.error):  # zlib: a damaged compressed entry
        raise KeyfaceError(f"{path} is not a keyface LiteRT model file, or it is damaged") from None


def load_model(path: Path, expect_kind: str | None = None):
    """Load a keyface .keras model and its metadata; refuse files of another kind."""
    meta = read_metadata(path, expect_kind)
    if Path(path).suffix == LITE_SUFFIX:
        held = meta.get("litert_precision")
        raise KeyfaceError(f"{path} holds {held} LiteRT weights only, no Keras network: run it in {held} "
                           "(train a float32 one with `keyface train`)")
    import keras
    from keyface.runtime import layers  # noqa: F401  registers ShapePrior (no loss is read: compile=False)
    try:
        return keras.models.load_model(path, compile=False), meta
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):  # Keras refuses to deserialise code: so do we
            raise KeyfaceError(f"{path} holds code (a Lambda layer); keyface never runs code from a model "
                               "file: refusing it") from None
        raise KeyfaceError(f"{path} cannot be loaded: {str(exc).splitlines()[0][:200]}") from None
