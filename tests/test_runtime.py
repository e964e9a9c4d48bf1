"""The LiteRT runtime: float32 networks compute what Keras computes, int8 ones the same to quantisation error;
conversions are cached once per model file and survive a damaged cache; int8 vectors are kept apart from
float32 ones; calls from several threads at once agree; and the default identify path runs without
TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest

from keyface.data.errors import KeyfaceError
from keyface.data.images import load_image
from keyface.runtime import networks as runtime
from keyface.keypoints.predictor import FaceBatch

RNG = np.random.default_rng(0)


@pytest.fixture
def small_net(tmp_path, monkeypatch):
    """A small conv embedder saved as a keyface .keras file, with a private cache."""
    import keras
    from keyface.runtime.networks import save_model
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    keras.utils.set_random_seed(0)
    x = image = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(x)
    for filters in (16, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Dense(8)(keras.layers.GlobalAveragePooling2D()(x))
    meta = {"kind": "embedder", "approach": "dlib-resnet", "input": {"size": 32, "channels": 3}}
    return save_model(keras.Model(image, x), tmp_path / "net.keras", meta)


def _crops(n: int) -> FaceBatch:
    return FaceBatch(RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.zeros((n, 68, 2), np.float32))


def test_int8_vectors_match_float32_and_are_versioned_apart(small_net):
    from keyface.recognition.core.pipeline import KerasFileEmbedder
    exact, quick = KerasFileEmbedder(small_net), KerasFileEmbedder(small_net, "int8")
    assert quick.model is None  # the Keras network is not even loaded
    assert exact.name == "dlib-resnet" and exact.batch == 64  # named as the file says it was made
    named = KerasFileEmbedder(small_net, "int8", name="facenet-dlib", batch=2)  # as the registry names it
    five = _crops(5)
    assert (named.name, named.batch) == ("facenet-dlib", 2)
    assert np.allclose(named.embed(five), quick.embed(five), atol=1e-6)  # in passes of 2 faces as of 5
    assert quick.version == exact.version + "-int8" and quick.dim == exact.dim == 8
    for n in (1, 5, 2):  # batch sizes change: the interpreter is resized each time
        batch = _crops(n)
        cosine = (exact.embed(batch) * quick.embed(batch)).sum(1)
        assert cosine.shape == (n,) and cosine.min() > 0.99, cosine


def test_the_conversion_is_cached_and_a_damaged_copy_is_made_again(small_net, monkeypatch):
    from keyface.recognition.core.pipeline import KerasFileEmbedder
    batch = _crops(2)
    first = KerasFileEmbedder(small_net, "int8").embed(batch)
    cached = list(runtime.cache_file(small_net, "int8").parent.iterdir())
    assert [p.suffix for p in cached] == [".tflite"]  # no partial file left beside it

    def no_conversion(path, precision):
        raise AssertionError("converted again although cached")
    with monkeypatch.context() as patch:
        patch.setattr(runtime, "convert", no_conversion)
        assert np.allclose(KerasFileEmbedder(small_net, "int8").embed(batch), first)
    cached[0].write_bytes(b"not a flatbuffer")
    assert np.allclose(KerasFileEmbedder(small_net, "int8").embed(batch), first)
    assert cached[0].read_bytes() != b"not a flatbuffer"


def test_an_exported_litert_model_file_runs_as_the_int8_network_and_only_so(small_net, tmp_path, monkeypatch):
    from keyface.data.errors import KeyfaceError
    from keyface.recognition.core.pipeline import KerasFileEmbedder
    from keyface.runtime.networks import load_model, read_metadata
    batch = _crops(3)
    converted = KerasFileEmbedder(small_net, "int8").embed(batch)
    lite = runtime.export_lite(small_net, tmp_path / "net.litert")
    assert read_metadata(lite)["litert_precision"] == "int8" and read_metadata(lite)["approach"] == "dlib-resnet"

    def no_conversion(path, precision):
        raise AssertionError("a LiteRT model file is never converted")
    monkeypatch.setattr(runtime, "convert", no_conversion)
    shipped = KerasFileEmbedder(lite, "int8")
    assert np.allclose(shipped.embed(batch), converted, atol=1e-5)
    assert shipped.version == runtime.file_version(lite) + "-int8"
    with pytest.raises(KeyfaceError, match="int8 LiteRT weights only"):
        KerasFileEmbedder(lite, "float32")
    with pytest.raises(KeyfaceError, match="int8 LiteRT weights only"):
        load_model(lite)
    whole = lite.read_bytes()
    for n, damage in enumerate([whole[:2000], *(whole[:k] + bytes([whole[k] ^ 0xFF]) + whole[k + 1:]
                                                 for k in range(200, len(whole) - 200, len(whole) // 7))]):
        damaged = tmp_path / f"damaged{n}.litert"  # cut short, or a byte flipped anywhere: one error, no traceback
        damaged.write_bytes(damage)
        if n == 0:  # cut short: refused
            with pytest.raises(KeyfaceError):
                KerasFileEmbedder(damaged, "int8").embed(batch)
            continue
        try:  # a flipped byte may land in the weights, where it only changes the numbers
            vectors = KerasFileEmbedder(damaged, "int8").embed(batch)
        except KeyfaceError:
            continue
        assert vectors.shape == (len(batch), shipped.dim)


def test_precision_is_checked():
    from keyface.recognition.approaches.registry import REGISTRY, load_embedder
    with pytest.raises(KeyfaceError, match="float32 only"):
        load_embedder("geometry", precision="int8")
    with pytest.raises(KeyfaceError, match="unknown precision 'int16'"):
        load_embedder("keypoints", precision="int16")
    assert REGISTRY["dlib-resnet"].precision == "int8" and REGISTRY["facenet"].precision == "float32"


def test_the_default_embedder_in_int8_keeps_real_distances(tmp_path, monkeypatch):
    """dlib-resnet on real demo photos: int8 and float32 distances between faces differ by < 0.01, far less
    than the gap between the shipped cut and the distances it separates."""
    from keyface.api import build
    from keyface.recognition.cli.demo import demo_root
    monkeypatch.setenv("KEYFACE_MODELS", str(tmp_path))
    quick, exact = build(precision="int8"), build(precision="float32")
    photos = [sorted(folder.iterdir())[0] for folder in sorted((demo_root() / "gallery").iterdir())[:4]]
    vectors = {}
    for rec in (quick, exact):
        found = [rec.faces(load_image(p))[2] for p in photos]
        vectors[rec.embedder.precision] = np.array([v[0] for v in found])
    assert quick.embedder.precision == "int8" and exact.embedder.precision == "float32"
    # --precision reaches the keypoint net too, and a cache key tells the two apart
    assert (quick.pipeline.predictor.precision, exact.pipeline.predictor.precision) == ("int8", "float32")
    assert quick.pipeline.predictor.version == exact.pipeline.predictor.version + "-int8"
    assert build().pipeline.predictor.precision == "int8"  # the default
    gap = np.abs(vectors["int8"] @ vectors["int8"].T - vectors["float32"] @ vectors["float32"].T)
    assert gap.max() < 0.01, gap


def test_the_keypoint_net_in_litert_equals_keras_in_float32_and_stays_close_in_int8(youtube_sample):
    from keyface.keypoints.predictor import KeypointPredictor, default_model_path
    keras_net = KeypointPredictor.load(default_model_path(), "keras")
    exact, quick = (KeypointPredictor.load(default_model_path(), precision=p) for p in ("float32", "int8"))
    x = np.stack([exact.crops(load_image(path), [(40, 40, 140, 160)])[0][0] for path, _ in youtube_sample])
    truth = keras_net.predict_crops(x)
    assert np.abs(exact.predict_crops(x) - truth).max() < 1e-3  # pixels
    gap = np.abs(quick.predict_crops(x) - truth)  # int8 weights, the default: measured 0.34 px at most, 0.05 mean
    assert gap.max() < 1.0 and gap.mean() < 0.15 and gap.max() > 1e-3  # (and it is int8: not the float net)


def test_threads_calling_one_network_at_once_get_their_own_answers(small_net):
    from concurrent.futures import ThreadPoolExecutor
    network = runtime.load_lite(small_net, "float32")
    batches = [RNG.uniform(0, 255, (n, 32, 32, 3)).astype(np.float32) for n in (1, 3, 2, 5, 1, 4, 2, 3)]
    alone = [network(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(network, batches * 4))
    for got, want in zip(together, alone * 4):
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)


def test_the_default_pipeline_runs_without_tensorflow():
    """Once the networks are converted, the default pipeline (BlazeFace, keypoints and dlib-resnet in
    LiteRT) never imports TensorFlow or Keras: `keyface embed` of a photo in a fresh process."""
    import subprocess
    import sys
    from keyface.api import build
    from keyface.recognition.cli.demo import demo_root
    build()  # converts (or finds) the cached copies in this user's cache, as a first run does
    photo = sorted((demo_root() / "gallery").iterdir())[0]
    photo = sorted(photo.iterdir())[0]
    script = ("import sys; from keyface.recognition.cli.main import main; "
              f"code = main(['embed', {str(photo)!r}]); "
              "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_run(small_net, tmp_path, caplog):
    (tmp_path / "home" / "keyface").mkdir(parents=True)
    (tmp_path / "home" / "keyface" / "cache").write_text("a file where the cache folder would be")
    network = runtime.load_lite(small_net, "float32")
    assert network(RNG.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)).shape == (2, 8)
    assert "cannot keep the converted net.keras" in caplog.text


def test_the_python_api_prints_nothing_of_litert_on_stderr(tmp_path):
    """LiteRT's C++ note about its CPU delegate is not the library user's business; their own stderr lines are."""
    import subprocess
    import sys
    from pathlib import Path
    probe = Path(__file__).resolve().parent.parent / "recognition" / "demo" / "probes" / "AJ_Lamas_0001.jpg"
    code = ("import sys, keyface\n"
            f"print(len(keyface.find_faces({str(probe)!r})))\n"
            "print('mine', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "1"
    assert "XNNPACK" not in out.stderr and out.stderr.strip().splitlines()[-1] == "mine"


def test_the_python_api_in_float32_prints_nothing_of_tensorflow_on_stderr(tmp_path):
    """TensorFlow's start-up notes (oneDNN, CUDA probing, CPU features) and its converter's are held back while it
    loads or converts a network (an empty cache: the keypoint net is converted), whatever TF_CPP_MIN_LOG_LEVEL
    says; the user's own stderr lines and warnings pass, before and after."""
    import os
    import subprocess
    import sys
    code = ("import sys, keyface\n"
            "print('before', file=sys.stderr)\n"
            "rec = keyface.build('dlib-resnet', precision='float32')\n"
            "print(rec.embedder.dim)\n"
            "print('mine', file=sys.stderr)\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "XDG_DATA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "128", out.stderr
    assert list((tmp_path / "keyface" / "cache" / "litert").glob("keypoints*float32*"))  # converted in this run
    assert out.stderr.split() == ["before", "mine"], out.stderr


def test_native_notes_are_told_from_what_a_user_must_see():
    from keyface.runtime.networks import NATIVE_NOISE
    noise = [b"I0000 00:00:1796472104.996724    4177 port.cc:153] oneDNN custom operations are on.",
             b"E0000 00:00:1796472108.681998    4177 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
             b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]
    kept = [b"F0000 00:00:1796472108.681998    4177 bfc_allocator.cc:52] Check failed: out of memory",
            b"E0000 00:00:1796472108.681998    4177 cuda_platform.cc:52] CUDA_ERROR_OUT_OF_MEMORY",
            b"keyface: error: photo.jpg: no face found", b"UserWarning: mine"]
    assert all(NATIVE_NOISE.match(line) for line in noise) and not any(NATIVE_NOISE.match(line) for line in kept)


def test_model_files_are_written_whole_readable_and_rewritten_in_their_mode(small_net, tmp_path):
    from keyface.recognition.approaches.calibration import rewrite_metadata
    from keyface.runtime.networks import META_ENTRY, read_metadata
    lite = runtime.export_lite(small_net, tmp_path / "net.litert")
    for made in (small_net, lite):  # weights, not faces: readable as any file made without keyface
        assert made.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["net.keras", "net.litert"]
    lite.chmod(0o640)
    rewrite_metadata(lite, META_ENTRY, {**read_metadata(lite), "threshold": 0.42})
    assert read_metadata(lite)["threshold"] == 0.42 and lite.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["net.keras", "net.litert"]


def test_native_notes_written_while_held_are_dropped_and_the_rest_passed_on():
    """What C++ code writes on file descriptor 2 during a held start-up (FAISS training a small index, say)."""
    import subprocess
    import sys
    code = ("import os\n"
            "from keyface.runtime.networks import without_native_notes\n"
            "said = without_native_notes(lambda: os.write(2, b'WARNING clustering 40 points to 12 centroids: "
            "please provide at least 468 training points\\nmine\\n'))\n"
            "print(said)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "95" and out.stderr == "mine\n", out.stderr


def test_native_notes_are_held_back_when_python_has_no_stderr(monkeypatch):
    """A pythonw-style process (sys.stderr is None) still loads and converts networks."""
    import sys
    from keyface.runtime.networks import without_native_notes
    monkeypatch.setattr(sys, "stderr", None)
    assert without_native_notes(lambda: without_native_notes(lambda: 5)) == 5  # nested, as convert's load is
