"""Approach B: the offline ImageNet reader, restoring all but the final layer, bad sources and folders."""
from __future__ import annotations

import collections
import json
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keyface.data.errors import KeyfaceError
from keyface.inception_finetune import imagenet


class _Storage:
    """A float32 storage to be written as data/<key> of the zip."""

    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


def _fake_torchscript(path: Path, tensors: list[np.ndarray], monkeypatch) -> None:
    """Write a TorchScript-style zip: modules of __torch__ classes holding tensors, as torch lays it out."""
    torch_utils, torch_mod, net_mod = (types.ModuleType(n) for n in ("torch._utils", "torch", "__torch__.net"))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called when writing")

    class FloatStorage:
        pass

    class Conv:
        pass
    for mod, name, obj in ((torch_utils, "_rebuild_tensor_v2", _rebuild_tensor_v2), (torch_mod, "FloatStorage", FloatStorage),
                           (net_mod, "Conv", Conv)):
        obj.__module__, obj.__qualname__ = mod.__name__, name
        setattr(mod, name, obj)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(sys.modules, "__torch__", types.ModuleType("__torch__"))  # parent package of __torch__.net

    class Tensor:
        def __init__(self, storage):
            self.storage = storage

        def __reduce__(self):
            shape = self.storage.array.shape
            stride = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
            return _rebuild_tensor_v2, (self.storage, 0, shape, stride, False, collections.OrderedDict())
    storages = [_Storage(str(i), t.astype("<f4")) for i, t in enumerate(tensors)]
    layers = []
    for group in range(len(tensors) // 4):
        conv = Conv()
        conv.__dict__.update(zip(("weight", "beta", "mean", "var"), (Tensor(s) for s in storages[4 * group: 4 * group + 4])))
        layers.append(conv)
    root = Conv()
    root.__dict__.update({"training": False, "layers": layers})

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.array.size)
            return None
    import io
    buffer = io.BytesIO()
    Writer(buffer, protocol=2).dump(root)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.array.tobytes())


def test_torchscript_tensors_read_in_module_order_without_torch(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=s).astype(np.float32) for s in [(4, 3, 3, 3), (4,), (4,), (4,), (2, 4, 1, 1), (2,), (2,), (2,)]]
    path = tmp_path / "w.pt"
    _fake_torchscript(path, tensors, monkeypatch)
    got = imagenet.read_tensors(path)
    assert len(got) == len(tensors)
    for a, b in zip(got, tensors):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(KeyfaceError, match="expected 376 tensors"):
        imagenet.keras_weight_groups(got)


def test_reader_refuses_pickles_that_name_anything_but_tensors(tmp_path):
    class Evil:
        def __reduce__(self):
            return os.system, ("echo owned",)
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(KeyfaceError, match="not an Inception-v3 weights file"):
        imagenet.read_tensors(path)


def test_tampered_or_wrong_file_is_refused_by_checksum(tmp_path):
    path = tmp_path / "default_1.pt"
    path.write_bytes(b"PK not the weights")
    with pytest.raises(KeyfaceError, match="tampered"):
        imagenet.checked_weights(path)


def test_conv_groups_turn_oihw_into_hwio(monkeypatch):
    kernel = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    tensors = [kernel, *(np.zeros(2, np.float32),) * 3] * imagenet.N_CONV
    monkeypatch.setattr(imagenet, "N_FLOATS", sum(t.size for t in tensors))  # a small stand-in network
    groups = imagenet.keras_weight_groups(tensors)
    assert len(groups) == 94 and groups[1][0].shape == (5, 7, 3, 2)
    assert groups[1][0][4, 6, 2, 1] == kernel[1, 2, 4, 6]
    with pytest.raises(KeyfaceError, match="group 0"):
        imagenet.keras_weight_groups([kernel, np.zeros(3, np.float32), np.zeros(2, np.float32),
                                      np.zeros(1, np.float32)] + tensors[4:])  # same counts, wrong shapes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A classifier of our own over 5 people, random weights, saved as a keyface .keras checkpoint."""
    import keras

    from keyface.inception_finetune.model import FID_SCALING, build_base, build_classifier
    from keyface.runtime.networks import save_model
    keras.utils.set_random_seed(1)
    base = build_base()
    for layer in base.layers:  # make BN statistics differ from a fresh build's
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + np.random.default_rng(2).normal(size=w.shape).astype(np.float32) ** 2
                               for w in layer.get_weights()])
    model = build_classifier(base, 5)
    path = tmp_path_factory.mktemp("ckpt") / "classifier.keras"
    save_model(model, path, {"kind": "inception-classifier", "source": "test", **FID_SCALING, "mixed10_pool": "max"})
    return model, path


def test_restores_every_layer_but_the_final_one_from_a_checkpoint(checkpoint):
    from keyface.inception_finetune.model import HEAD, build_classifier, load_source_base, weighted_layers
    source, path = checkpoint
    base, info = load_source_base(path)
    assert info["source"] == "test"
    target = build_classifier(base, 3)
    src, dst = weighted_layers(source), weighted_layers(target)
    assert len(dst) == 189  # 94 conv + 94 BN + the new head
    for name, layer in dst.items():
        if name == HEAD:
            continue
        for a, b in zip(src[name].get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert dst[HEAD].get_weights()[0].shape == (2048, 3)  # one output per person
    assert src[HEAD].get_weights()[0].shape == (2048, 5)


@pytest.mark.slow
def test_restores_from_a_keras_weights_file_and_refuses_other_architectures(tmp_path):
    import keras

    from keyface.inception_finetune.model import conv_bn_pairs, load_source_base
    stock = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "inception.weights.h5"
    stock.save_weights(str(path))
    base, info = load_source_base(path)
    assert info["mixed10_pool"] == "avg" and info["scale"] == 127.5
    for i, (conv, bn) in enumerate(conv_bn_pairs(stock)):
        np.testing.assert_array_equal(conv.get_weights()[0], base.get_layer(f"conv{i:02d}").get_weights()[0])
        np.testing.assert_array_equal(bn.get_weights()[1], base.get_layer(f"bn{i:02d}").get_weights()[1])
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    wrong = tmp_path / "other.weights.h5"
    other.save_weights(str(wrong))
    with pytest.raises(KeyfaceError, match="not a Keras InceptionV3"):
        load_source_base(wrong)


def test_a_keyface_model_of_another_kind_is_not_a_weights_source():
    from keyface.inception_finetune.model import load_source_base
    from keyface.recognition.approaches.registry import WEIGHTS
    with pytest.raises(KeyfaceError, match="not an Inception-v3"):
        load_source_base(WEIGHTS / "geometry.keras")


def test_classifier_needs_two_people_with_two_photos_each():
    from keyface.inception_finetune.train import check_people
    with pytest.raises(KeyfaceError, match="at least 2 people"):
        check_people(np.array(["ada", "ada"], dtype=object))
    with pytest.raises(KeyfaceError, match="single photo"):
        check_people(np.array(["ada", "ada", "bob"], dtype=object))
    check_people(np.array(["ada", "ada", "bob", "bob"], dtype=object))


def _tiny_keypoint_model(folder: Path) -> Path:
    import keras

    from keyface.runtime.networks import save_model
    from keyface.keypoints.models import ModelConfig, build_model
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(width=8, embedding_dim=32)
    return save_model(build_model(cfg), folder / "kp.keras",
                      {"kind": "keypoints", "scheme": "ibug68", "config": {"model": cfg.to_dict()}})


def _photo_tree(root: Path, people: int, photos: int) -> Path:
    """A folder-per-person tree copied from the shipped demo sample."""
    import shutil

    from keyface.recognition.cli.demo import demo_root
    for person in sorted((demo_root() / "gallery").iterdir())[:people]:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:photos]:
            shutil.copy(photo, root / person.name / photo.name)
    return root


@pytest.mark.slow
def test_train_on_folders_then_enrol_with_the_inception_embedder(tmp_path, capsys):
    from keyface.recognition.cli.main import main
    kp = _tiny_keypoint_model(tmp_path)
    tree = _photo_tree(tmp_path / "people", 5, 4)
    models = tmp_path / "models"
    code = main(["train", "inception", "--folders", str(tree), "--weights", "none", "--input-size", "80",
                 "--finetune-epochs", "1", "--keypoint-model", str(kp), "--models", str(models)])
    assert code == 0 and (models / "embedders" / "inception.keras").is_file()
    run_dir = next((models / "runs").glob("inception-*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["source"].startswith("none") and "git_revision" in config and (run_dir / "classifier.keras").is_file()
    capsys.readouterr()
    person = sorted(tree.iterdir())[0]
    code = main(["enroll", "--name", "Someone", str(next(person.iterdir())), "--embedder", "inception",
                 "--keypoint-model", str(kp), "--models", str(models), "--gallery", str(tmp_path / "g.db")])
    assert code == 0 and "1 photo(s) added" in capsys.readouterr().out
    _classify_with_the_fine_tuned_head(main, tree, kp, models, capsys)


def _classify_with_the_fine_tuned_head(main, tree: Path, kp: Path, models: Path, capsys) -> None:
    """`keyface classify`: the installed classifier ranks the people it was trained on, and nobody else."""
    from keyface.runtime.networks import read_metadata
    trained = read_metadata(models / "inception" / "classifier.keras")["people"]  # held-out people are not in it
    assert 2 <= len(trained) < 5 and set(trained) <= {p.name for p in tree.iterdir()}
    photo = str(next((tree / trained[0]).iterdir()))
    code = main(["classify", photo, "--json", "--top", "5", "--min-probability", "0", "--keypoint-model", str(kp),
                 "--models", str(models)])
    face = json.loads(capsys.readouterr().out)[0]["faces"][0]
    assert code == 0 and sorted(t["person"] for t in face["top"]) == sorted(trained)
    assert abs(sum(t["probability"] for t in face["top"]) - 1) < 1e-3 and face["name"] == face["top"][0]["person"]
    code = main(["classify", photo, "--classifier", str(models / "embedders" / "inception.keras")])
    assert code == 2 and "not a 'inception-classifier' model" in capsys.readouterr().err
    code = main(["classify", photo, "--top", "0", "--models", str(models)])
    assert code == 2 and "--top must be 1 or more" in capsys.readouterr().err


@pytest.mark.parametrize("people,photos,message", [(1, 3, "at least 2 people"), (3, 1, "single photo")])
def test_folder_trees_too_small_to_fine_tune_are_refused(tmp_path, capsys, people, photos, message):
    from keyface.recognition.cli.main import main
    tree = _photo_tree(tmp_path / "people", people, photos)
    code = main(["train", "inception", "--folders", str(tree), "--weights", "none", "--models", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
