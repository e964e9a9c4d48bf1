"""The geometry baseline: identity from aligned keypoint coordinates alone (scikit-learn LDA).

The fitted standardisation + LDA projection is one linear map, stored as a one-layer Keras model
so that it travels in a .keras file like every other embedder (no pickles).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from keyface.runtime.networks import save_model
from keyface.runtime.provenance import provenance
from keyface.keypoints.predictor import FaceBatch, InputSpec
from keyface.recognition.core.pipeline import KerasFileEmbedder
from keyface.recognition.training.face_sets import FaceSet

log = logging.getLogger(__name__)

SPEC = InputSpec(size=112, channels=1, zoom=1.0)  # only the keypoints are used; the crop is incidental


def geometry_features(keypoints: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) aligned keypoints -> (N, 136) coordinates relative to the crop centre, in crop units."""
    return ((np.asarray(keypoints, np.float32) - size / 2) / size).reshape(len(keypoints), -1)


class GeometryEmbedder(KerasFileEmbedder):
    """Keypoint geometry projected by LDA; the vector ignores pixels entirely."""
    name = "geometry"
    int8_capable = False  # a single small matrix on coordinates: nothing to gain

    def _raw_embed(self, batch: FaceBatch) -> np.ndarray:
        x = geometry_features(batch.keypoints, self.spec.size)
        return np.asarray(self.model(x, training=False))


def fit_geometry(faces: FaceSet, dim: int, out: Path, data_note: str, held_out: tuple[str, ...] = ()) -> Path:
    """Fit standardisation + LDA on the faces' geometry; save it as a .keras linear embedder (held_out: the
    people kept out of the fit for calibration, recorded in the file)."""
    import keras
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    x = geometry_features(faces.keypoints, SPEC.size)
    mean, std = x.mean(0), x.std(0) + 1e-6
    n_people = len(np.unique(faces.people))
    lda = LinearDiscriminantAnalysis(n_components=min(dim, n_people - 1, x.shape[1]))
    lda.fit((x - mean) / std, faces.people.astype(str))
    # project((x - mean)/std - xbar) = x @ W' + b, folded into one Dense layer
    scalings = lda.scalings_[:, :lda.n_components]
    w = scalings / std[:, None]
    b = -(mean / std) @ scalings - lda.xbar_ @ scalings
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(w.shape[1], name="lda")])
    model.get_layer("lda").set_weights([w.astype(np.float32), b.astype(np.float32)])
    meta = {"kind": "embedder", "approach": "geometry", "input": SPEC.__dict__, "data": data_note,
            "people": n_people, "faces": len(faces), "held_out_people": sorted(held_out),
            **provenance()}
    return save_model(model, out, meta)
