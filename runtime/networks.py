"""keyface's model files and how it runs their networks at inference: LiteRT (XNNPACK) on the CPU, or Keras
through TensorFlow.

A model file is a `.keras` file with keyface's metadata (what made it, on what data) as an extra zip entry,
or a `.litert` zip of that metadata and a LiteRT flatbuffer alone (the first part of this file).

A `.keras` network is converted once by TensorFlow's converter into a LiteRT flatbuffer and kept in
the per-user cache, one per model file and TensorFlow version. "float32" keeps the weights as they are
(outputs equal Keras's to ~1e-5); "int8" stores them as 8-bit integers per channel with activations
quantised on the fly (dynamic-range quantisation): dlib's ResNet then takes ~4 ms a face on one core
against ~11 ms (accuracy in docs/benchmarks.md). Running a flatbuffer needs no TensorFlow, which saves
seconds of start-up, and small networks skip TensorFlow's ~3 ms a call. The flatbuffer holds only
built-in operators: reading it runs no code from anywhere.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import queue
import re
import sys
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.files import write_whole
from keyface.data.paths import user_dir

log = logging.getLogger(__name__)

# Model files

META_ENTRY = "keyface.json"  # an extra zip entry: Keras ignores it, we read it without loading weights
LITE_ENTRY = "network.tflite"  # a LiteRT model file: the metadata and this flatbuffer, no Keras network
LITE_SUFFIX = ".litert"
MODEL_FILE_MODE = 0o644  # a model file holds weights, not faces: readable by others, as files made without keyface


def save_model(model, path: Path, metadata: dict, mode: int = MODEL_FILE_MODE) -> Path:
    """Save a Keras model as .keras with metadata embedded, written whole (data.files.write_whole) in `mode`
    (0600 for a model fitted on people's faces, such as a gallery's softmax head)."""
    if getattr(model, "optimizer", None) is not None:
        model = _without_training_state(model)

    def write(tmp: Path) -> None:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(META_ENTRY, json.dumps(metadata, indent=2, default=str))
    write_whole(path, write, suffix=".keras", mode=mode)
    return Path(path)


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
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(META_ENTRY, json.dumps(metadata, indent=2, default=str))
            zf.writestr(LITE_ENTRY, flatbuffer)
    write_whole(path, write, mode=MODEL_FILE_MODE)
    return Path(path)


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
    try:  # TensorFlow's start-up notes held back: a library's user never asked for them
        return without_native_notes(lambda: _keras_model(path)), meta
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):  # Keras refuses to deserialise code: so do we
            raise KeyfaceError(f"{path} holds code (a Lambda layer); keyface never runs code from a model "
                               "file: refusing it") from None
        raise KeyfaceError(f"{path} cannot be loaded: {str(exc).splitlines()[0][:200]}") from None


def _keras_model(path: Path):
    """The Keras network in a .keras file, no code run from it and no loss read (compile=False)."""
    import keras
    from keyface.runtime import layers  # noqa: F401  registers ShapePrior
    return keras.models.load_model(path, compile=False)


# Running their networks

PRECISIONS = ("int8", "float32")
_threads = {"n": 0}  # 0: every core


def set_threads(n: int) -> None:
    """CPU threads each network may use from now on (0: every core); `keyface bench` pins 1."""
    _threads["n"] = n


def cpu_threads() -> int:
    """The CPU threads a network loaded now gets."""
    return _threads["n"] or os.cpu_count() or 1


def file_version(path: Path) -> str:
    """A model version: the first 12 hex digits of the model file's SHA-256 (hashed once per file state:
    loading an int8 embedder asks for it twice, and dlib-resnet's 22 MB take ~90 ms)."""
    stat = Path(path).stat()
    return _sha256_prefix(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _sha256_prefix(path: str, mtime_ns: int, size: int) -> str:
    """The hash of a file as it is at (mtime, size): a rewritten file is hashed anew."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def cache_file(model_path: Path, precision: str) -> Path:
    """Where the converted copy of a model file is kept: one per file version, precision and converter."""
    try:
        converter = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:  # installed under another name (tensorflow-cpu, ...)
        converter = "unknown"
    name = f"{Path(model_path).stem}-{file_version(model_path)}-{precision}-tf{converter}.tflite"
    return user_dir("cache") / "litert" / name


def cached_flatbuffer(model_path: Path, precision: str) -> bytes:
    """The LiteRT flatbuffer of a keyface .keras network, converted on first use and cached."""
    cache = cache_file(model_path, precision)
    if cache.is_file():
        return cache.read_bytes()
    log.info("converting %s for LiteRT in %s (once; kept in %s)", Path(model_path).name, precision, cache.parent)
    flatbuffer = convert(model_path, precision)
    try:  # whole or absent: a killed conversion leaves no half file under the real name
        write_whole(cache, lambda tmp: tmp.write_bytes(flatbuffer))
    except OSError as exc:  # a read-only or full home: run from memory, convert again next time
        log.warning("cannot keep the converted %s in %s: %s", Path(model_path).name, cache.parent, exc.strerror)
    return flatbuffer


def export_lite(model_path: Path, out: Path) -> Path:
    """Write a keyface .keras network as a LiteRT model file with int8 weights (what `keyface export` makes)."""
    meta = {**read_metadata(model_path), "litert_precision": "int8", "exported_from": Path(model_path).name,
            "exported_from_version": file_version(model_path)}
    return save_lite_model(convert(model_path, "int8"), out, meta)


def convert(model_path: Path, precision: str) -> bytes:
    """A keyface .keras network as a LiteRT flatbuffer, its weights as they are or in int8; TensorFlow's and the
    converter's notes on stderr held back (a library's user never asked for them)."""
    return without_native_notes(lambda: _converted(model_path, precision))


def _converted(model_path: Path, precision: str) -> bytes:
    """convert(), its notes not held back."""
    import tensorflow as tf
    model, _ = load_model(model_path)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras's export prints its signature: stdout is the user's
            return converter.convert()
    except Exception as exc:  # the converter raises many kinds; the caller only needs to know it failed
        raise KeyfaceError(f"{Path(model_path).name} cannot run in LiteRT: {str(exc).splitlines()[0][:200]}") from None


class LiteNetwork:
    """A converted network: float32 (N, ...) in, float32 (N, ...) out. An interpreter has one set of
    buffers, so calls running side by side (threads finding faces, server requests) each take one from
    a pool, made as needed up to one per core: nobody waits on a lock, and memory stays bounded. A network
    loaded from a model file carries that file's `metadata` and `version` (its hash, "-int8" for int8)."""

    def __init__(self, flatbuffer: bytes):
        self._flatbuffer, self._threads = flatbuffer, cpu_threads()  # the thread count of the moment it is made
        self.metadata, self.version = {}, ""
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        first = self._new()
        self.output_shape = tuple(int(d) for d in first[0].get_output_details()[0]["shape"][1:])
        self._idle.put(first)

    def _new(self) -> list:
        """A fresh interpreter and the input shape its tensors are allocated for (none yet)."""
        from ai_edge_litert.interpreter import Interpreter
        return [Interpreter(model_content=self._flatbuffer, num_threads=self._threads), None]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The network on a batch: its (first) output."""
        return next(iter(self.outputs(x).values()))

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The network on a batch: every output by name."""
        with self._slots:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                slot = self._new()
            try:
                return _run(slot, x)
            finally:
                self._idle.put(slot)


_first_interpreter = {"made": False, "lock": threading.Lock()}


def _allocate(interpreter) -> None:
    """Allocate an interpreter's tensors. The process's first allocation makes LiteRT's CPU delegate, whose
    C++ code prints a note about it on the process's stderr, once, which a library's user never asked for:
    that note is held back; whatever else is written to stderr meanwhile is passed on as it was."""
    if _first_interpreter["made"]:  # every later allocation: no lock, nothing held
        interpreter.allocate_tensors()
        return
    with _first_interpreter["lock"]:
        if not _first_interpreter["made"]:
            _first_interpreter["made"] = True
            without_native_notes(interpreter.allocate_tensors)
            return
    interpreter.allocate_tensors()


# What native libraries write on stderr by themselves: TensorFlow's start-up notes (oneDNN, CUDA probing, CPU
# features) and LiteRT's note on its CPU delegate come from C++ straight to file descriptor 2, before any Python or
# environment setting is read; a library's user never asked for them (the command line filters them too).
# Lines at severity I (info) or W (warning): absl/glog lines (I0000 00:00:... file.cc:12] ...), TF's older
# "2024-01-01 12:00:00.000000: I tensorflow/..." lines, absl's notice about InitializeLog, LiteRT's note on its
# CPU delegate, OpenCV's warnings; and the CUDA driver's failed probe on a machine without a GPU. Other E and F
# lines pass: 'Check failed' or out-of-memory before an abort must be seen.
NATIVE_NOISE = re.compile(rb"^\s*([IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
                          rb"|E\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit"
                          rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "
                          rb"|WARNING: All log messages before absl::InitializeLog"
                          rb"|To enable the following instructions:"
                          rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
                          rb"|fully_quantize: \d+, inference_type: "  # the LiteRT quantiser's settings, per call
                          rb"|WARNING clustering \d+ points to \d+ centroids"  # FAISS training a small gallery's index
                          rb"|\[ ?(?:WARN|INFO):\d+@)")  # OpenCV's: "[ WARN:0@0.1] ... can't open camera by index"


_holding_stderr = threading.RLock()  # one thread at a time redirects the process's stderr (nested: the same)


def without_native_notes(start_up: Callable):
    """start_up() with the process's stderr held in a file, then passed on without the native libraries' notes
    (NATIVE_NOISE); with nowhere to hold it, or no stderr, nothing is held. Other threads' stderr lines meanwhile
    are held too, and passed on after."""
    with _holding_stderr:
        return _held(start_up)


def _held(start_up: Callable):
    """without_native_notes() under its lock."""
    try:
        held, saved = tempfile.TemporaryFile(), os.dup(2)
    except OSError:
        return start_up()
    with held:
        if sys.stderr is not None:
            sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            return start_up()
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(True) if not NATIVE_NOISE.match(line))
            if kept:
                with contextlib.suppress(OSError):
                    os.write(2, kept)


def _run(slot: list, x: np.ndarray) -> dict[str, np.ndarray]:
    """One interpreter on a batch, resized only when the input's shape changes (reallocating costs ~1 ms).
    Fully convolutional networks (BlazeFace) take any height and width this way, not only the batch size."""
    interpreter, shape = slot
    source = interpreter.get_input_details()[0]
    if x.shape != shape:
        interpreter.resize_tensor_input(source["index"], list(x.shape))
        _allocate(interpreter)
        slot[1] = x.shape
    interpreter.set_tensor(source["index"], np.ascontiguousarray(x, np.float32))
    interpreter.invoke()
    return {out["name"]: interpreter.get_tensor(out["index"]).copy() for out in interpreter.get_output_details()}


def load_lite(model_path: Path, precision: str = "float32", expect_kind: str | None = None) -> LiteNetwork:
    """The LiteRT network of a model file on `cpu_threads()` threads (a .keras file converted once, cached),
    with the file's metadata (refused if it is not of `expect_kind`) and version."""
    if precision not in PRECISIONS:
        raise KeyfaceError(f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}")
    metadata = read_metadata(model_path, expect_kind)
    network = _lite_network(model_path, precision, metadata)
    network.metadata = metadata
    network.version = precise_version(file_version(model_path), precision)
    return network


def precise_version(version: str, precision: str) -> str:
    """A model file's version as its outputs' version: int8 outputs differ slightly from float32 ones, so
    their version ends "-int8" and a gallery or cache keeps them apart."""
    return version + ("-int8" if precision == "int8" else "")


def split_version(version: str) -> tuple[str, str]:
    """An outputs' version as (the model file's version, the precision they were made in)."""
    file_version = version.removesuffix("-int8")
    return file_version, "float32" if file_version == version else "int8"


def _lite_network(model_path: Path, precision: str, metadata: dict) -> LiteNetwork:
    """The shipped flatbuffer of a .litert file, or a .keras file's converted one."""
    shipped = lite_flatbuffer(model_path)
    if shipped is not None:
        stored = metadata.get("litert_precision")
        if stored != precision:
            raise KeyfaceError(f"{Path(model_path).name} holds {stored} weights only, not {precision}")
        try:
            return LiteNetwork(shipped)
        except ValueError:  # LiteRT's word for an unreadable flatbuffer
            raise KeyfaceError(f"{model_path} is damaged: its network cannot be read") from None
    try:
        return LiteNetwork(cached_flatbuffer(model_path, precision))
    except ValueError:  # LiteRT's word for an unreadable flatbuffer: a damaged cache file, made again
        log.warning("the cached LiteRT copy of %s is damaged; converting it again", Path(model_path).name)
        cache_file(model_path, precision).unlink(missing_ok=True)
        return LiteNetwork(cached_flatbuffer(model_path, precision))


class KerasNetwork:
    """A Keras model behind one traced function (Keras predict() costs ~20 ms a call; this does not)."""

    def __init__(self, model):
        self.model = model
        self._fn = None

    def _call(self, x):
        """The model in inference mode (a method, so that autograph can read its source)."""
        return self.model(x, training=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The model on a batch: one trace for every batch size (a server's batches vary)."""
        if self._fn is None:
            import tensorflow as tf
            spec = tf.TensorSpec([None, *self.model.input_shape[1:]], tf.float32)
            # no XLA: it compiles anew for each batch size (~0.4 s each) for ~0.5 ms a face
            self._fn = tf.function(self._call, input_signature=[spec])
        return np.asarray(self._fn(x))
