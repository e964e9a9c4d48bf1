"""Calibration: the thresholds a model file stores, chosen on the people its training held out."""
from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.files import write_whole
from keyface.runtime.networks import META_ENTRY, read_metadata
from keyface.recognition.approaches.registry import load_embedder
from keyface.recognition.core.clustering import best_cluster_threshold
from keyface.keypoints.predictor import FaceBatch
from keyface.recognition.core.open_set import open_set_metadata
from keyface.recognition.core.verification import best_threshold, pair_distances, sample_pairs


def read_threshold(path: Path, key: str) -> float:
    """A threshold stored in a model file's metadata."""
    return float(read_metadata(path)[key])


def held_out_people(model_path: Path) -> list[str]:
    """The people a model's training held out, whom calibration measures on; refused for a model that does not
    name them (it cannot be calibrated fairly)."""
    held = read_metadata(model_path).get("held_out_people")
    if not held:
        raise KeyfaceError(f"{model_path} does not name the people its training held out: it cannot be calibrated "
                           "fairly (retrain it)")
    return held


def calibrate(model_path: Path, faces, approach: str, strangers=None) -> float:
    """Store the model's thresholds, chosen on held-out DevTrain people: 'same person' (best pair
    accuracy), clustering, and identify's open-set cut (1% of strangers named). Strangers are DevTrain
    people with a single photo (no trainer uses them) where given, else half the held-out people."""
    stored = read_metadata(model_path)
    held = held_out_people(model_path)
    val = faces.subset(np.isin(faces.people.astype(str), held))  # exactly the people the trainer held out
    if len(np.unique(val.people)) < 2:
        raise KeyfaceError("too few people to calibrate a threshold")
    emb = load_embedder(approach, model=str(model_path))
    vectors = emb.embed(FaceBatch(val.crops, val.keypoints))
    pairs = sample_pairs(val.people, 1000, 1)
    threshold = best_threshold(pair_distances(vectors[pairs[:, 0]], vectors[pairs[:, 1]]), pairs[:, 2].astype(bool))
    if strangers is not None and len(strangers):
        open_set = open_set_metadata(vectors, val.people, emb.embed(FaceBatch(strangers.crops, strangers.keypoints)),
                                     "held-out DevTrain people; strangers: DevTrain people with one photo")
    else:
        names = np.unique(val.people)
        enrolled = np.isin(val.people, names[::2])
        open_set = open_set_metadata(vectors[enrolled], val.people[enrolled], vectors[~enrolled],
                                     "half the held-out people enrolled, the other half strangers")
    meta = stored | {"threshold": threshold, "threshold_from": "held-out DevTrain people",
                                        "cluster_threshold": best_cluster_threshold(vectors, val.people),
                                        **open_set}
    rewrite_metadata(model_path, META_ENTRY, meta)
    return threshold



def rewrite_metadata(path: Path, entry: str, meta: dict) -> None:
    """Replace the metadata entry of a model file's zip (every other entry copied, the file written whole)."""
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename != entry:
                    dst.writestr(info, src.read(info.filename))
            dst.writestr(entry, json.dumps(meta, indent=2, default=str))
    write_whole(path, write, mode=stat.S_IMODE(Path(path).stat().st_mode))  # as it was
