"""The named embedders: the one place that names every approach, its model file, loader and maker.

Importing this module builds no model and loads no weights. An approach whose embedding is its network on
the aligned crops (B, C, dlib-resnet, facenet-dlib) runs as a `KerasFileEmbedder` under its name; A and
the geometry baseline have classes of their own, imported (with TensorFlow) when first loaded. `MadeOnce`
keeps what is loaded, once for each key.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from keyface.data.errors import KeyfaceError
from keyface.data.paths import models_dir
from keyface.recognition.core.pipeline import Embedder, KerasFileEmbedder


@dataclass(frozen=True)
class Registration:
    """One named embedder: its model file, how to load it, how it is made, how reports call it."""
    name: str
    model_file: str  # looked up in MODELS/embedders/, then among the package's shipped weights
    loader: Callable[[Path, str], Embedder]  # (model file, precision)
    description: str
    shipped: list[Path] = field(default_factory=list)
    made_by: str = ""  # the command that makes its model file (default: `keyface train NAME`)
    label: str = ""  # how comparison reports name it
    trainer: Callable | None = None  # approaches.trainers: (settings, faces_for, run_dir, note) -> (file, faces)
    settings: tuple[str, ...] = ()  # the TrainSettings its trainer reads
    folders: bool = False  # whether it can train on a folder-per-person tree instead of LFW
    benchmarked: bool = False  # scored by `keyface bench` unless embedders are named
    precision: str = "float32"  # how it runs unless told otherwise: the precision its figures were measured in


REGISTRY: dict[str, Registration] = {}


def register(reg: Registration) -> None:
    """Add an embedder to the registry."""
    REGISTRY[reg.name] = reg


WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # small default models shipped in the package


def _network_file(name: str, batch: int | None = None) -> Callable[[Path, str], Embedder]:
    """A loader for an approach whose embedding is its network on the crops: `batch` faces a forward pass."""
    def load(path: Path, precision: str) -> Embedder:
        return KerasFileEmbedder(path, precision, name=name, batch=batch)
    return load


def _keypoint_embedder(path: Path, precision: str) -> Embedder:
    """Approach A: the keypoint net's penultimate features."""
    from keyface.recognition.approaches.keypoints import KeypointEmbedder
    return KeypointEmbedder(path, precision)


def _geometry_embedder(path: Path, precision: str) -> Embedder:
    """The baseline: LDA over aligned keypoint coordinates."""
    from keyface.recognition.approaches.geometry import GeometryEmbedder
    return GeometryEmbedder(path, precision)


def _trainer(name: str):
    """A trainer from approaches.trainers, imported when it runs (it pulls in TensorFlow and more)."""
    def train(*args):
        from keyface.recognition.approaches import trainers
        return getattr(trainers, name)(*args)
    return train


register(Registration("keypoints", "keypoints.keras", _keypoint_embedder,
                      "approach A: the keypoint net's penultimate features, fine-tuned with a softmax over identities",
                      [WEIGHTS / "keypoints.keras"], label="A: keypoint net + softmax",
                      trainer=_trainer("train_keypoints"), settings=("head_epochs", "finetune_epochs"),
                      benchmarked=True))
register(Registration("geometry", "geometry.keras", _geometry_embedder,
                      "baseline: LDA over aligned keypoint coordinates alone", [WEIGHTS / "geometry.keras"],
                      label="keypoint geometry (LDA)", trainer=_trainer("train_geometry"), benchmarked=True))
register(Registration("inception", "inception.keras", _network_file("inception", batch=32),  # 160 px activations are large
                      "approach B: Inception-v3 from ImageNet weights, fine-tuned on LFW DevTrain people "
                      "(shipped with int8 weights, 18.5 MB; `keyface train inception` makes a float32 one)",
                      [WEIGHTS / "inception-int8.litert"], label="B: Inception-v3",
                      trainer=_trainer("train_inception"), settings=("finetune_epochs", "weights", "input_size"),
                      folders=True, benchmarked=True, precision="int8"))
register(Registration("facenet", "facenet.keras", _network_file("facenet"),
                      "approach C: FaceNet-style 128-d embedding trained with online triplet mining on LFW "
                      "DevTrain people", [WEIGHTS / "facenet.keras"], label="C: FaceNet triplets",
                      trainer=_trainer("train_facenet"), settings=("input_size", "epochs", "lr", "mining"),
                      folders=True, benchmarked=True))
register(Registration("dlib-resnet", "dlib-resnet.keras", _network_file("dlib-resnet"),
                      "dlib's ResNet face descriptor converted to Keras (outside data: ~3M faces of ~7,500 people, "
                      "no LFW person; public domain)", [WEIGHTS / "dlib-resnet.keras"], "keyface weights dlib-resnet",
                      label="dlib ResNet, converted (outside data)", benchmarked=True, precision="int8"))
register(Registration("facenet-dlib", "facenet-dlib.keras", _network_file("facenet-dlib"),
                      "approach C's triplet training started from dlib-resnet, fine-tuned on LFW DevTrain people "
                      "(made by `keyface train facenet-dlib`; not shipped)", label="C from dlib-resnet (fine-tuned)",
                      trainer=_trainer("train_facenet_dlib"), settings=("epochs", "lr", "mining", "source_model"),
                      folders=True))

# the best measured on held-out people (docs/benchmarks.md); every command's default
DEFAULT_EMBEDDER = "dlib-resnet"
EMBEDDER_NAMES = (DEFAULT_EMBEDDER, *(name for name in REGISTRY if name != DEFAULT_EMBEDDER))
TRAINABLE = tuple(name for name, reg in REGISTRY.items() if reg.trainer is not None)
BENCHMARKED = tuple(name for name in EMBEDDER_NAMES if REGISTRY[name].benchmarked)


def find_model_file(reg: Registration, models: str | os.PathLike | None, model: str | None = None) -> Path:
    """The model file for an embedder: an explicit path, the models directory, or a shipped default."""
    if model:
        path = Path(model)
        if not path.is_file():
            raise KeyfaceError(f"embedder model file not found: {path}")
        return path
    candidates = [models_dir(models) / "embedders" / reg.model_file, *reg.shipped]
    for path in candidates:
        if path.is_file():
            return path
    raise KeyfaceError(f"no model for embedder {reg.name!r}: expected {candidates[0]} "
                       f"(make one with `{reg.made_by or 'keyface train ' + reg.name}`)")


def registered(name: str) -> Registration:
    """The registration of a named embedder."""
    if name not in REGISTRY:
        raise KeyfaceError(f"unknown embedder {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def own_precision(name: str, precision: str | None) -> str | None:
    """The precision to ask of the named embedder for vectors made in `precision`: None where that is how it
    runs unless told otherwise (so its keypoint net keeps its own too)."""
    return None if name in REGISTRY and REGISTRY[name].precision == precision else precision


def embedder_for(asked: str | None, precision: str | None, made: dict) -> tuple[str, str | None]:
    """The embedder to run and its precision: the one asked, else a gallery's own (`made`: its "embedder" and
    "precision", as made_by gives them; {} for none), else the default; in the precision asked, else the
    gallery's for its own embedder, else the embedder's own (None)."""
    name = asked or made.get("embedder") or DEFAULT_EMBEDDER
    return name, precision or (own_precision(name, made.get("precision")) if name == made.get("embedder") else None)


def load_embedder(name: str, models: str | os.PathLike | None = None, model: str | None = None,
                  precision: str | None = None) -> Embedder:
    """Load the named embedder from its model file, in `precision` ("int8" | "float32"; default: the
    registration's)."""
    reg = registered(name)
    path = find_model_file(reg, models, model)
    embedder = reg.loader(path, precision or reg.precision)
    made_as = embedder.metadata.get("approach")
    if made_as and made_as != name:  # else a gallery would carry the wrong embedder's name
        raise KeyfaceError(f"{path} is a {made_as!r} model, not {name!r}: load it as {made_as!r}")
    return embedder


class MadeOnce:
    """What `make(*key)` gives, made once for each key and kept: threads asking at once get the one made (a
    recogniser loads for seconds and holds its networks' memory)."""

    def __init__(self, make):
        self.make, self.kept, self.making = make, {}, threading.Lock()

    def __call__(self, *key):
        with self.making:
            if key not in self.kept:
                self.kept[key] = self.make(*key)
            return self.kept[key]

    def __len__(self) -> int:
        return len(self.kept)
