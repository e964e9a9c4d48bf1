"""Inception-v3 for approach B: the base with canonical layer names, its weight sources, a new head.

Layers are renamed in creation order (conv00..conv93, bn00..bn93) so that weights move between
builds, files and input sizes by name. The base takes pixels scaled to [-1, 1]; the exported
embedder wraps it with the source's own input scaling.
"""
from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from keyface.data.errors import KeyfaceError

HEAD = "identity"  # the replaced final layer: one softmax output per person
POOL = "avg_pool"
MIXED10_POOL = "mixed10_branch_pool"
FID_SCALING = {"offset": 128.0, "scale": 128.0}  # Google's 2015 graph: (x - 128) / 128
KERAS_SCALING = {"offset": 127.5, "scale": 127.5}  # keras.applications.inception_v3.preprocess_input


def _uid(layer) -> int:
    """The creation counter Keras appends to auto-generated names (conv2d, conv2d_1, ...)."""
    found = re.search(r"_(\d+)$", layer.name)
    return int(found.group(1)) if found else 0


def build_base(max_pool_mixed10: bool = True) -> keras.Model:
    """InceptionV3 without top, global average pooled, any input size >= 75 px, inputs in [-1, 1].

    Google's 2015 graph (the ImageNet source) pools mixed10's pool branch with a 3x3 max pool where
    Keras uses an average pool; with max_pool_mixed10 the network matches that graph.
    """
    stock = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(None, None, 3),
                                           pooling="avg")
    names = {}
    for i, (conv, bn) in enumerate(conv_bn_pairs(stock)):
        names[id(conv)], names[id(bn)] = f"conv{i:02d}", f"bn{i:02d}"
    last_avg = max((l for l in stock.layers if isinstance(l, keras.layers.AveragePooling2D)), key=_uid)

    def clone(layer):
        config = layer.get_config()
        if layer is last_avg:
            pool = keras.layers.MaxPooling2D if max_pool_mixed10 else keras.layers.AveragePooling2D
            return pool(pool_size=3, strides=1, padding="same", name=MIXED10_POOL)
        if id(layer) in names:
            config["name"] = names[id(layer)]
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            config["name"] = POOL
        return layer.__class__.from_config(config)
    return keras.models.clone_model(stock, clone_function=clone)


def conv_bn_pairs(stock: keras.Model) -> list[tuple[keras.layers.Layer, keras.layers.Layer]]:
    """(conv, its BatchNormalization) of a stock Keras InceptionV3, in the order Keras created them."""
    convs = sorted((l for l in stock.layers if isinstance(l, keras.layers.Conv2D)), key=_uid)
    return [(conv, conv._outbound_nodes[0].operation) for conv in convs]  # each conv feeds one BN


def set_imagenet_groups(base: keras.Model, groups: list[tuple[np.ndarray, ...]]) -> None:
    """Load (kernel, beta, mean, variance) groups into conv00..conv93 / bn00..bn93."""
    for i, (kernel, beta, mean, var) in enumerate(groups):
        base.get_layer(f"conv{i:02d}").set_weights([kernel])
        base.get_layer(f"bn{i:02d}").set_weights([beta, mean, var])


def weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Layers that hold weights, by name, looking inside nested models (an exported embedder)."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(weighted_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def restore_all_but_final(source: keras.Model, target: keras.Model, final: str = HEAD) -> list[str]:
    """Copy every weighted layer of target but `final` from source (same names, same shapes)."""
    have = weighted_layers(source)
    restored = []
    for name, layer in weighted_layers(target).items():
        if name == final:
            continue
        if name not in have:
            raise KeyfaceError(f"weights source has no layer {name!r}: not an Inception-v3 of this build")
        shapes = [tuple(w.shape) for w in have[name].weights], [tuple(w.shape) for w in layer.weights]
        if shapes[0] != shapes[1]:
            raise KeyfaceError(f"layer {name!r} has weights {shapes[0]} in the source, {shapes[1]} here: "
                               "a weights file of another architecture")
        layer.set_weights(have[name].get_weights())
        restored.append(name)
    return restored


def build_classifier(base: keras.Model, n_people: int, dropout: float = 0.2) -> keras.Model:
    """The base with its ImageNet classifier replaced: dropout and a softmax over n_people."""
    if n_people < 2:
        raise KeyfaceError(f"a classifier needs at least 2 people, got {n_people}")
    x = keras.layers.Dropout(dropout, name="head_dropout")(base.output)
    probs = keras.layers.Dense(n_people, activation="softmax", name=HEAD)(x)
    return keras.Model(base.input, probs, name="inception_classifier")


def load_source_base(source: str | Path, models: Path | None = None) -> tuple[keras.Model, dict]:
    """A base network and its provenance (source line, input scaling, mixed10 pool) from 'imagenet',
    'none', or a file: a keyface .keras (converted ImageNet weights or a checkpoint), a Keras .h5."""
    from keyface.inception_finetune.imagenet import imagenet_model_path
    if str(source) == "none":
        return build_base(), {"source": "none: random initialisation", **FID_SCALING, "mixed10_pool": "max"}
    path = imagenet_model_path(models) if str(source) == "imagenet" else Path(source)
    if not path.is_file():
        hint = " (run `keyface weights inception-imagenet`)" if str(source) == "imagenet" else ""
        raise KeyfaceError(f"weights not found: {path}{hint}")
    if path.suffix == ".keras":
        from keyface.runtime.networks import load_model
        model, meta = load_model(path)
        info = {k: meta[k] for k in ("source", "offset", "scale", "mixed10_pool") if k in meta}
        if len(info) < 4:
            raise KeyfaceError(f"{path} is a keyface model but not an Inception-v3 one")
        base = build_base(info["mixed10_pool"] == "max")
        restore_all_but_final(model, base)
        return base, info
    info = {"source": f"Keras InceptionV3 weights file {path.name}", **KERAS_SCALING, "mixed10_pool": "avg"}
    return _from_keras_h5(path), info


def _from_keras_h5(path: Path) -> keras.Model:
    """A base with the weights of a Keras applications InceptionV3 (no top) .h5 weights file."""
    stock = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        stock.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise KeyfaceError(f"{path} is not a Keras InceptionV3 (no top) weights file: {str(exc)[:120]}") from None
    base = build_base(max_pool_mixed10=False)
    for i, (conv, bn) in enumerate(conv_bn_pairs(stock)):
        base.get_layer(f"conv{i:02d}").set_weights(conv.get_weights())
        base.get_layer(f"bn{i:02d}").set_weights(bn.get_weights())
    return base


def embedding_model(base: keras.Model, info: dict) -> keras.Model:
    """Raw RGB pixels (0..255) -> the source's input scaling -> base -> pooled 2048-d features."""
    image = keras.Input((None, None, 3), name="image")
    scaled = keras.layers.Rescaling(1.0 / info["scale"], offset=-info["offset"] / info["scale"], name="scaling")(image)
    return keras.Model(image, base(scaled), name="inception_embedder")


def pixel_classifier(base: keras.Model, info: dict, head: keras.layers.Layer) -> keras.Model:
    """Raw RGB pixels -> the source's scaling -> base -> the new final layer: one probability per person."""
    features = embedding_model(base, info)
    return keras.Model(features.input, head(features.output), name="inception_classifier")
