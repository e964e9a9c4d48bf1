"""Read dlib's DNN serialisation (the `.dat` of dlib's ResNet face descriptor) without dlib.

The file is a stream of dlib's portable primitives: integers in a compact form (a control byte
holding the byte count and sign, then little-endian bytes), floats as (mantissa, exponent) integer
pairs, strings as a length then bytes, bools as '0'/'1', and tensors as a version (2), four
dimensions and raw little-endian float32 values. The network writes its loss layer first, then one
version integer per wrapper layer (layers, tags, skips) going down to the input layer, then each
layer's own record from the input upwards, each followed by its wrapper's state (three bools and
three tensors that are empty in a saved model; the input's neighbour adds one integer). Only the layer kinds of the face descriptor are
understood; anything else is refused. Nothing in the file is executed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from keyface.data.errors import KeyfaceError
# The record names this reader understands, and the input layer's.
CONV, AFFINE, RELU, MAX_POOL, AVG_POOL, ADD_PREV, FC = (
    "con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2")
INPUT = "input_rgb_image_sized"
LOSS = "loss_metric_2"


class DlibFormatError(KeyfaceError):
    """The bytes are not the dlib network this reader expects."""


@dataclass
class Layer:
    """One layer record: its kind, integer settings (strides, sizes) and float32 arrays."""
    kind: str
    settings: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network: the input's mean colour and size, and its layers from the input upwards."""
    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    layers: list[Layer]
    loss: dict


class Stream:
    """dlib's primitives read from bytes, each check failing with the offset where it failed."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def fail(self, what: str) -> DlibFormatError:
        """An error naming what was expected and where."""
        return DlibFormatError(f"not a dlib face-descriptor network: {what} at byte {self.pos}")

    def take(self, n: int) -> bytes:
        """The next n bytes."""
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"{n} more bytes expected")
        chunk = self.data[self.pos: self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        """A compact signed or unsigned integer."""
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            raise self.fail("an integer")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """A float stored as mantissa * 2**exponent."""
        mantissa, exponent = self.int(), self.int()
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        """A length-prefixed string (printable ASCII only, as every name here is)."""
        raw = self.take(self.int())
        if not all(32 <= c < 127 for c in raw):
            raise self.fail("a layer name")
        return raw.decode("ascii")

    def bool(self) -> bool:
        """'1' or '0'."""
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail("a bool")
        return ch == b"1"

    def expect(self, value: int, what: str) -> None:
        """An integer that must have this value (a version number)."""
        start, got = self.pos, self.int()
        if got != value:
            self.pos = start
            raise self.fail(f"{what} {value}, found {got}")

    def tensor(self) -> np.ndarray:
        """A tensor: version 2, (samples, k, rows, cols), float32 values; returned flat."""
        self.expect(2, "tensor version")
        dims = [self.int() for _ in range(4)]
        if min(dims) < 0:
            raise self.fail("tensor dimensions")
        count = int(np.prod(dims))
        return np.frombuffer(self.take(4 * count), "<f4").astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias tensor's shape (version 1, four dimensions)."""
        self.expect(1, "alias version")
        return tuple(self.int() for _ in range(4))


def _conv(s: Stream) -> Layer:
    params = s.tensor()
    filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (s.int() for _ in range(7))
    weight_shape, bias_shape = s.alias(), s.alias()
    _multipliers(s)
    kernel_size = int(np.prod(weight_shape))
    if kernel_size + filters != params.size or weight_shape[0] != filters or bias_shape[1] != filters:
        raise s.fail("convolution weights of the stated shape")
    return Layer(CONV, {"filters": filters, "size": (rows, cols), "stride": (stride_y, stride_x),
                        "padding": (pad_y, pad_x)},
                 {"kernel": params[:kernel_size].reshape(weight_shape), "bias": params[kernel_size:]})


def _affine(s: Stream) -> Layer:
    params = s.tensor()
    gamma_shape, beta_shape = s.alias(), s.alias()
    s.int()  # mode: per channel (conv) or per element (fc)
    n = int(np.prod(gamma_shape))
    if params.size != n + int(np.prod(beta_shape)):
        raise s.fail("affine scales and shifts")
    return Layer(AFFINE, {}, {"gamma": params[:n], "beta": params[n:]})


def _pool(kind: str):
    def read(s: Stream) -> Layer:
        rows, cols, stride_y, stride_x, pad_y, pad_x = (s.int() for _ in range(6))
        return Layer(kind, {"size": (rows, cols), "stride": (stride_y, stride_x), "padding": (pad_y, pad_x)})
    return read


def _fc(s: Stream) -> Layer:
    outputs, inputs = s.int(), s.int()
    params = s.tensor()
    s.alias(), s.alias()  # weight and bias shapes, implied by the two counts
    s.int()  # bias mode
    _multipliers(s)
    n = inputs * outputs
    if params.size not in (n, n + outputs):
        raise s.fail("fully connected weights of the stated shape")
    return Layer(FC, {"outputs": outputs}, {"kernel": params[:n].reshape(inputs, outputs), "bias": params[n:]})


def _multipliers(s: Stream) -> None:
    """Learning-rate and weight-decay multipliers: training settings, read and dropped."""
    for _ in range(4):
        s.float()


READERS = {CONV: _conv, AFFINE: _affine, RELU: lambda s: Layer(RELU), MAX_POOL: _pool(MAX_POOL),
           AVG_POOL: _pool(AVG_POOL), ADD_PREV: lambda s: Layer(ADD_PREV), FC: _fc}


def read_network(data: bytes) -> DlibNet:
    """Parse a serialised dlib metric-learning network of the layer kinds above."""
    s = Stream(data)
    s.expect(1, "loss layer version")
    if s.string() != LOSS:
        raise s.fail(f"the {LOSS} loss layer")
    loss = {"margin": s.float(), "distance_threshold": s.float()}
    wrappers = 0
    while data[s.pos: s.pos + 2 + len(INPUT)] != bytes([1, len(INPUT)]) + INPUT.encode():
        if s.int() not in (1, 2, 3):
            raise s.fail("a layer wrapper version")
        wrappers += 1
    s.string()
    mean_rgb = (s.float(), s.float(), s.float())
    size = (s.int(), s.int())
    layers = []
    while s.pos < len(data):
        name = s.string()
        if name not in READERS:
            raise s.fail(f"a known layer (found {name!r})")
        layers.append(READERS[name](s))
        _wrapper_state(s, bottom=len(layers) == 1)
    if wrappers < len(layers):
        raise s.fail(f"{len(layers)} layer wrappers (found {wrappers})")
    return DlibNet(mean_rgb, size, layers, loss)


def _wrapper_state(s: Stream, bottom: bool) -> None:
    """A layer wrapper's run-time state: three bools and three tensors, all empty in a saved net; the
    wrapper next to the input also stores its sample expansion factor (1: one tensor row per image)."""
    for _ in range(3):
        s.bool()
    for _ in range(3):
        if s.tensor().size:
            raise s.fail("an empty run-time tensor")
    if bottom:
        s.expect(1, "sample expansion factor")
