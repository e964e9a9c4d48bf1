"""BlazeFace short-range in 8-bit integers: the shipped MediaPipe network, rebuilt layer by layer in Keras from
its TFLite file and quantised by TensorFlow's converter (weights and activations in int8, calibrated on the
shipped demo photos at the sizes the detector's passes see). XNNPACK runs it ~1.6x faster than the float
file, which is what makes searching a 12 MP photo for 24 px faces affordable on one core.

Only `keyface weights blazeface-int8` runs this (it needs TensorFlow); detection reads the result, shipped in
the package and pinned by SHA-256 (keypoints.blazeface). Reading the float file executes nothing: its
tensors are read by LiteRT's interpreter with no delegate, and its graph is the fixed BlazeFace stack.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError

log = logging.getLogger(__name__)

CALIBRATION_TILE = 256
# The operators after the last int8 block: the four heads, their reshapes and the outputs' concatenations.
HEAD_OPS = ("classificator", "regressor", "reshape", "StatefulPartitionedCall")


def rebuild_keras(tflite: Path):
    """The float network as a Keras model with any input size, its weights copied from the TFLite file."""
    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    net = Interpreter(model_path=str(tflite), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    net.allocate_tensors()
    net.set_tensor(net.get_input_details()[0]["index"], np.zeros(net.get_input_details()[0]["shape"], np.float32))
    net.invoke()  # evaluates the float16 weights' DEQUANTIZE ops, so every weight reads as float32
    shapes = {t["index"]: t["shape"] for t in net.get_tensor_details()}
    names = {t["index"]: t["name"].replace("/", "_") for t in net.get_tensor_details()}
    source = keras.Input((None, None, 3))
    made = {net.get_input_details()[0]["index"]: source}
    for op in net._get_ops_details():
        if op["op_name"] != "DEQUANTIZE":
            inputs = [i for i in op["inputs"] if i >= 0]
            output = op["outputs"][0]
            made[output] = _layer(op["op_name"], inputs, (output, names[output]), made, shapes, net.get_tensor)
    return keras.Model(source, [made[o["index"]] for o in net.get_output_details()])


def _layer(kind: str, inputs: list[int], out: tuple[int, str], made: dict, shapes: dict, tensor):
    """One TFLite operator of BlazeFace as Keras layers applied to the tensors made so far; a convolution's
    layer keeps the operator's name (the heads' names say which layers stay in float)."""
    import keras
    output, name = out
    x = made.get(inputs[0])
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        weights, bias = tensor(inputs[1]), tensor(inputs[2])
        stride, size = int(shapes[inputs[0]][1] // shapes[output][1]), weights.shape[1]
        if stride == 2:  # TFLite's SAME padding of an even input at stride 2: one less before than after
            x = keras.layers.ZeroPadding2D(((size // 2 - 1, size // 2), (size // 2 - 1, size // 2)))(x)
        padding = "valid" if stride == 2 else "same"
        layer = (keras.layers.Conv2D(weights.shape[0], size, strides=stride, padding=padding, name=name)
                 if kind == "CONV_2D" else keras.layers.DepthwiseConv2D(size, strides=stride, padding=padding, name=name))
        y = layer(x)
        layer.set_weights([weights.transpose(1, 2, 3, 0), bias])
        return y
    if kind == "PAD":  # BlazeFace pads only channels, to add a narrower branch to a wider one
        extra = int(tensor(inputs[1])[3][1])
        return keras.layers.Lambda(lambda t, n=extra: keras.ops.pad(t, [[0, 0], [0, 0], [0, 0], [0, n]]))(x) if extra else x
    simple = {"RELU": lambda: keras.layers.ReLU()(x),
              "ADD": lambda: keras.layers.Add()([made[inputs[0]], made[inputs[1]]]),
              "MAX_POOL_2D": lambda: keras.layers.MaxPooling2D(2)(x),
              "RESHAPE": lambda: keras.layers.Reshape((-1, int(shapes[output][-1])))(x),
              "CONCATENATION": lambda: keras.layers.Concatenate(axis=1)([made[i] for i in inputs])}
    if kind not in simple:
        raise KeyfaceError(f"unexpected operator {kind} in the BlazeFace file: not the network keyface knows")
    return simple[kind]()


def calibration_inputs(photos: list[Path]) -> list[np.ndarray]:
    """The inputs the detector's passes see, from real photos: each photo letterboxed whole (128 px) and
    tiles of group canvases made from them (small faces, backgrounds)."""
    from keyface.data.crowd import CanvasSpec, Source, make_canvas
    from keyface.data.images import load_image
    from keyface.detection import detector as blazeface  # BlazeFace lives in detection.detector
    out = [blazeface.letterbox(load_image(p))[0] for p in photos]
    sources = [Source(p.stem, p, (70.0, 60.0, 180.0, 190.0)) for p in photos]  # deep-funneled LFW: the face's place
    rng = np.random.default_rng(0)
    for width, height, face_px in ((1024, 768, (18.0, 40.0)), (1024, 768, (40.0, 90.0)), (768, 512, (20.0, 60.0))):
        canvas = make_canvas("calibration", CanvasSpec(width, height, (10, 16), face_px), sources, rng, load_image)
        for y in range(0, height - CALIBRATION_TILE + 1, CALIBRATION_TILE):
            for x in range(0, width - CALIBRATION_TILE + 1, CALIBRATION_TILE):
                out.append(blazeface.to_input(canvas.image[y:y + CALIBRATION_TILE, x:x + CALIBRATION_TILE]))
    return out


def quantised(model, samples: list[np.ndarray]) -> bytes:
    """The model as a LiteRT flatbuffer with int8 weights and activations but for the output heads, kept in
    float: in int8 their scores and box offsets would move in steps of ~1.7 (logit, px), too coarse for the
    score cut and for a 20 px face's box, and they cost ~1% of the time."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    with _quiet():
        plain = Interpreter(model_content=converter.convert())
        ops = [plain.get_tensor_details()[op["outputs"][0]]["name"] for op in plain._get_ops_details()]
        heads = [n for n in ops if any(part in n for part in HEAD_OPS)]
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=heads)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset, debug_options=options)
        return debugger.get_nondebug_quantized_model()


def _quiet():
    """The converter prints its saved signature on stdout, which belongs to the user."""
    import contextlib
    import io
    return contextlib.redirect_stdout(io.StringIO())


def build(tflite: Path, photos: list[Path]) -> bytes:
    """The int8 file from the float one and the calibration photos."""
    if len(photos) < 20:
        raise KeyfaceError(f"calibration needs at least 20 photos, {len(photos)} given")
    return quantised(rebuild_keras(tflite), calibration_inputs(photos))
