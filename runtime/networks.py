"""How keyface runs its networks at inference: LiteRT (XNNPACK) on the CPU, or Keras through TensorFlow.

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
import logging
import os
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.paths import user_dir
from keyface.runtime.modelfile import lite_flatbuffer, load_model, read_metadata, save_lite_model

log = logging.getLogger(__name__)

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
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(flatbuffer)
        partial.replace(cache)  # whole or absent: a killed conversion leaves no half file under the real name
    except OSError as exc:  # a read-only or full home: run from memory, convert again next time
        log.warning("cannot keep the converted %s in %s: %s", Path(model_path).name, cache.parent, exc.strerror)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return flatbuffer


def export_lite(model_path: Path, out: Path) -> Path:
    """Write a keyface .keras network as a LiteRT model file with int8 weights (what `keyface export` makes)."""
    meta = {**read_metadata(model_path), "litert_precision": "int8", "exported_from": Path(model_path).name,
            "exported_from_version": file_version(model_path)}
    return save_lite_model(convert(model_path, "int8"), out, meta)


def convert(model_path: Path, precision: str) -> bytes:
    """A keyface .keras network as a LiteRT flatbuffer, its weights as they are or in int8."""
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
    a pool, made as needed up to one per core: nobody waits on a lock, and memory stays bounded."""

    def __init__(self, flatbuffer: bytes, threads: int):
        self._flatbuffer, self._threads = flatbuffer, threads
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


_DELEGATE_NOTE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_first_interpreter = {"made": False, "lock": threading.Lock()}


@contextlib.contextmanager
def _without_delegate_note():
    """Around the process's first interpreter: LiteRT's C++ code prints a note about its CPU delegate on the
    process's stderr, once, which a library's user never asked for. Whatever else is written to stderr
    meanwhile is passed on as it was."""
    if _first_interpreter["made"]:  # every later allocation: no lock, nothing held
        yield
        return
    with _first_interpreter["lock"]:
        if _first_interpreter["made"]:
            yield
            return
        _first_interpreter["made"] = True
        try:
            held = tempfile.TemporaryFile()
        except OSError:  # nowhere to hold stderr: the note may show
            yield
            return
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to speak of
            held.close()
            yield
            return
        with held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = b"".join(line for line in held.read().splitlines(True) if not line.startswith(_DELEGATE_NOTE))
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
        with _without_delegate_note():  # allocation makes the CPU delegate, which says so once
            interpreter.allocate_tensors()
        slot[1] = x.shape
    interpreter.set_tensor(source["index"], np.ascontiguousarray(x, np.float32))
    interpreter.invoke()
    return {out["name"]: interpreter.get_tensor(out["index"]).copy() for out in interpreter.get_output_details()}


def load_lite(model_path: Path, precision: str = "float32") -> LiteNetwork:
    """The LiteRT network of a model file on `cpu_threads()` threads (a .keras file converted once, cached)."""
    if precision not in PRECISIONS:
        raise KeyfaceError(f"unknown precision {precision!r}: {' or '.join(PRECISIONS)}")
    shipped = lite_flatbuffer(model_path)
    if shipped is not None:
        stored = read_metadata(model_path).get("litert_precision")
        if stored != precision:
            raise KeyfaceError(f"{Path(model_path).name} holds {stored} weights only, not {precision}")
        try:
            return LiteNetwork(shipped, cpu_threads())
        except ValueError:  # LiteRT's word for an unreadable flatbuffer
            raise KeyfaceError(f"{model_path} is damaged: its network cannot be read") from None
    try:
        return LiteNetwork(cached_flatbuffer(model_path, precision), cpu_threads())
    except ValueError:  # LiteRT's word for an unreadable flatbuffer: a damaged cache file, made again
        log.warning("the cached LiteRT copy of %s is damaged; converting it again", Path(model_path).name)
        cache_file(model_path, precision).unlink(missing_ok=True)
        return LiteNetwork(cached_flatbuffer(model_path, precision), cpu_threads())


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
