"""Shared fixtures: the real data root (tests marked `data` skip without it) and the small sample."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data"


def _data_root() -> Path | None:
    """KEYFACE_DATA, else ../shared/data beside the checkout (as in CI), else None."""
    for candidate in (os.environ.get("KEYFACE_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "youtube_faces_68").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True)
def network_threads():
    """The CPU threads networks are made with, as each test found them: a command run in-process for several
    photos sets one thread a network, which must not carry into the next test."""
    from keyface.runtime import networks
    before = networks._threads["n"]
    yield
    networks.set_threads(before)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `data` when the real data is absent."""
    if _data_root() is None:
        skip = pytest.mark.skip(reason="real data not found (set KEYFACE_DATA)")
        for item in items:
            if "data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def data_root() -> Path:
    """The real data root."""
    root = _data_root()
    if root is None:
        pytest.skip("real data not found (set KEYFACE_DATA)")
    return root


@pytest.fixture(scope="session")
def youtube_sample() -> list[tuple[Path, np.ndarray]]:
    """Four real youtube_faces_68 test frames with their 68 keypoints, shipped in tests/data."""
    table = pd.read_csv(SAMPLE / "youtube_sample" / "keypoints.csv")
    return [(SAMPLE / "youtube_sample" / row[0], np.asarray(row[1:], np.float32).reshape(68, 2))
            for row in table.itertuples(index=False)]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """A tiny keypoint net and a geometry embedder fitted on synthetic shapes: plumbing, not accuracy."""
    import keras
    from tests.test_embedders import synthetic_faces
    from keyface.runtime.networks import save_model
    from keyface.keypoints.models import ModelConfig, build_model
    from keyface.recognition.approaches.geometry import fit_geometry
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("models")
    cfg = ModelConfig(width=8, embedding_dim=32)
    kp = save_model(build_model(cfg), folder / "kp.keras",
                    {"kind": "keypoints", "scheme": "ibug68", "config": {"model": cfg.to_dict()}})
    geo = fit_geometry(synthetic_faces(size=112), 8, folder / "geometry.keras", "synthetic")
    return ["--keypoint-model", str(kp), "--embedder", "geometry", "--embedder-model", str(geo)]
