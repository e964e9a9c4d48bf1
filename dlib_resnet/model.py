"""dlib's ResNet face descriptor rebuilt in Keras from the layers `dlib_format` read.

The layer list must be dlib's pattern: a 7x7/2 convolution and 3x3/2 max pool, then residual
units, then a spatial mean and a 128-wide matrix without bias. A unit is conv, affine, relu, conv,
affine, [2x2/2 average pool of the shortcut when the unit downsamples], add, relu. dlib adds
tensors of different shapes by zero-filling the smaller one at the end of each axis (rows,
columns, channels); the rebuild does the same with zero-padding layers, so the file is exact in
Keras's own layers. Each affine (batch norm folded at training time) is folded into its conv.
"""
from __future__ import annotations

import keras
import numpy as np

from keyface.dlib_resnet.dlib_format import ADD_PREV, AFFINE, AVG_POOL, CONV, FC, MAX_POOL, RELU, DlibFormatError, DlibNet
from keyface.keypoints.predictor import InputSpec

# dlib's chip, the network's input: 150 px, padding 0.25, cut by fitting 36 of the 68 keypoints to dlib's
# mean face (measured against MTCNN's 5 landmarks in docs/benchmarks.md)
SPEC = InputSpec(size=150, channels=3, zoom=1.0, shift_y=0.0, alignment="dlib68")

UNIT = (CONV, AFFINE, RELU, CONV, AFFINE, ADD_PREV, RELU)
DOWN_UNIT = (CONV, AFFINE, RELU, CONV, AFFINE, AVG_POOL, ADD_PREV, RELU)
STEM = (CONV, AFFINE, RELU, MAX_POOL)
HEAD = (AVG_POOL, FC)


def split_units(net: DlibNet) -> list[tuple[str, list]]:
    """The layer list cut into ('stem' | 'unit' | 'down' | 'head', layers); refused if off the pattern."""
    kinds = [layer.kind for layer in net.layers]
    if tuple(kinds[:4]) != STEM or tuple(kinds[-2:]) != HEAD:
        raise DlibFormatError("not dlib's ResNet face descriptor: unexpected first or last layers")
    parts, i = [("stem", net.layers[:4])], 4
    while i < len(kinds) - 2:
        for name, pattern in (("unit", UNIT), ("down", DOWN_UNIT)):
            if tuple(kinds[i: i + len(pattern)]) == pattern:
                parts.append((name, net.layers[i: i + len(pattern)]))
                i += len(pattern)
                break
        else:
            raise DlibFormatError(f"not dlib's ResNet face descriptor: unexpected layers from layer {i}")
    return parts + [("head", net.layers[-2:])]


def _conv_weights(conv, affine) -> list[np.ndarray]:
    """dlib's (out, in, rows, cols) kernel and bias with the affine folded in, in Keras's layout."""
    gamma, beta = affine.arrays["gamma"], affine.arrays["beta"]
    kernel = np.transpose(conv.arrays["kernel"], (2, 3, 1, 0)) * gamma
    return [kernel.astype(np.float32), (conv.arrays["bias"] * gamma + beta).astype(np.float32)]


def _conv(x, conv, affine, name: str, weights: list):
    """A dlib convolution (valid when strided, 'same' when stride 1) with its affine folded in."""
    rows, cols = conv.settings["size"]
    pad_y, pad_x = conv.settings["padding"]
    if (pad_y, pad_x) == (0, 0):
        padding = "valid"
    elif (pad_y, pad_x) == (rows // 2, cols // 2) and conv.settings["stride"] == (1, 1):
        padding = "same"
    else:
        raise DlibFormatError(f"convolution padding {pad_y, pad_x} has no Keras equivalent")
    weights.append((name, _conv_weights(conv, affine)))
    return keras.layers.Conv2D(conv.settings["filters"], (rows, cols), strides=conv.settings["stride"],
                               padding=padding, name=name)(x)


def _pad_to(x, rows: int, cols: int, channels: int, name: str):
    """Zero-fill x at the end of rows, columns and channels, as dlib's add does."""
    h, w, c = x.shape[1:]
    if (h, w) != (rows, cols):
        x = keras.layers.ZeroPadding2D(((0, rows - h), (0, cols - w)), name=f"{name}_padrc")(x)
    if c != channels:  # channels as a third spatial axis, so a stock padding layer can fill them
        x = keras.layers.Reshape((rows, cols, c, 1), name=f"{name}_as3d")(x)
        x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (0, channels - c)), name=f"{name}_padc")(x)
        x = keras.layers.Reshape((rows, cols, channels), name=f"{name}_as2d")(x)
    return x


def _add(a, b, name: str):
    """dlib's add_prev: both zero-filled to the larger shape, then summed."""
    shape = [max(i, j) for i, j in zip(a.shape[1:], b.shape[1:])]
    return keras.layers.Add(name=name)([_pad_to(a, *shape, f"{name}_a"), _pad_to(b, *shape, f"{name}_b")])


def _unit(x, layers: list, name: str, weights: list):
    """A residual unit: two folded convs, the (pooled when downsampling) shortcut added, relu."""
    y = keras.layers.ReLU(name=f"{name}_relu1")(_conv(x, layers[0], layers[1], f"{name}_conv1", weights))
    y = _conv(y, layers[3], layers[4], f"{name}_conv2", weights)
    shortcut = x
    if layers[5].kind == AVG_POOL:
        pool = layers[5].settings
        if pool["padding"] != (0, 0):
            raise DlibFormatError("padded average pooling has no Keras equivalent here")
        shortcut = keras.layers.AveragePooling2D(pool["size"], pool["stride"], name=f"{name}_pool")(x)
    return keras.layers.ReLU(name=f"{name}_relu2")(_add(shortcut, y, f"{name}_add"))


def build_keras(net: DlibNet) -> keras.Model:
    """The Keras model of a parsed dlib face descriptor: 150x150 RGB 0..255 in, raw 128-d out."""
    parts, weights = split_units(net), []
    size = net.input_size
    image = keras.Input((*size, 3), name="image")
    # dlib feeds (pixel - mean colour) / 256
    x = keras.layers.Normalization(mean=list(net.mean_rgb), variance=[256.0 ** 2] * 3, name="dlib_input")(image)
    stem = parts[0][1]
    x = keras.layers.ReLU(name="stem_relu")(_conv(x, stem[0], stem[1], "stem_conv", weights))
    pool = stem[3].settings
    x = keras.layers.MaxPooling2D(pool["size"], pool["stride"], name="stem_pool")(x)
    for k, (_, layers) in enumerate(parts[1:-1]):
        x = _unit(x, layers, f"unit{k}", weights)
    x = keras.layers.GlobalAveragePooling2D(name="mean")(x)
    fc = parts[-1][1][1]
    x = keras.layers.Dense(fc.settings["outputs"], use_bias=fc.arrays["bias"].size > 0, name="descriptor")(x)
    weights.append(("descriptor", [fc.arrays["kernel"]] + ([fc.arrays["bias"]] if fc.arrays["bias"].size else [])))
    model = keras.Model(image, x, name="dlib_resnet")
    for name, values in weights:
        model.get_layer(name).set_weights(values)
    return model
