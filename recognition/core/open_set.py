"""Open-set identification cuts: the distance below which a face is named, chosen by how many strangers
(people not enrolled) it lets through, on people held out of the model's training.

How many strangers a cut lets through grows with the gallery (each stranger meets more people), so
the calibration fixes the gallery: GALLERY_PEOPLE held-out people with up to ENROLLED_PHOTOS photos
each, drawn DRAWS times at random, every stranger measured against every draw.
"""
from __future__ import annotations

import numpy as np

from keyface.data.errors import FalseAcceptRateError, KeyfaceError, false_accept_rate
from keyface.recognition.core.search import nearest_people

DEFAULT_FAR = 0.01  # the share of strangers `identify` may name by default
MAX_FAR = 0.1  # the model file keeps the strangers' distances up to this share, for `--far`
ENROLLED_PHOTOS = 5  # photos enrolled per held-out person, as in the colleagues protocol
GALLERY_PEOPLE = 50  # people per calibration gallery: a team, a small office
DRAWS = 4


def cut_at_far(lowest: np.ndarray, far: float, strangers: int | None = None) -> float:
    """The distance cut that names at most `far` of the strangers, given the lowest of their
    nearest-person distances (all of them, or the lowest part of `strangers` in all): halfway between
    the last stranger let through and the first kept out."""
    d = np.sort(np.asarray(lowest, np.float64))
    n = len(d) if strangers is None else strangers
    far = false_accept_rate(far)
    if n == 0:
        raise KeyfaceError("no stranger distances to choose an open-set cut from")
    k = int(np.floor(far * n + 1e-9))  # strangers allowed through
    if k == 0:
        raise FalseAcceptRateError(f"a false-accept rate of {far} is finer than the {n} calibration strangers can resolve "
                           f"(smallest: {1.0 / n:.4g})")
    if k >= len(d) and len(d) < n:
        raise FalseAcceptRateError(f"a false-accept rate of {far} is beyond what the model file keeps "
                           f"(at most {len(d) / n:.3g})")
    return float((d[k - 1] + d[k]) / 2) if k < len(d) else float(d[-1] + 1e-6)


def stranger_distances(enrolled_v: np.ndarray, enrolled_people: np.ndarray, strangers_v: np.ndarray) -> np.ndarray:
    """Each stranger's distance to its nearest enrolled person."""
    best = nearest_people(strangers_v, enrolled_v, np.asarray(enrolled_people, dtype=object), k=1)
    return np.array([m[0].distance for m in best], np.float64)


def enrolled_subset(people: np.ndarray, chosen=None) -> np.ndarray:
    """Indices of the first ENROLLED_PHOTOS photos of each (chosen) person: a calibration gallery."""
    seen: dict = {}
    keep = []
    for i, person in enumerate(people):
        if (chosen is None or person in chosen) and seen.get(person, 0) < ENROLLED_PHOTOS:
            seen[person] = seen.get(person, 0) + 1
            keep.append(i)
    return np.asarray(keep, np.int64)


def pooled_distances(vectors: np.ndarray, people: np.ndarray, strangers_v: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every stranger's nearest distance in each of DRAWS random galleries of GALLERY_PEOPLE people."""
    rng = np.random.default_rng(seed)
    names = np.unique(people)
    pooled = []
    for _ in range(DRAWS if len(names) > GALLERY_PEOPLE else 1):
        chosen = set(rng.choice(names, min(GALLERY_PEOPLE, len(names)), replace=False))
        gallery = enrolled_subset(people, chosen)
        pooled.append(stranger_distances(vectors[gallery], people[gallery], strangers_v))
    return np.sort(np.concatenate(pooled))


def open_set_metadata(vectors: np.ndarray, people: np.ndarray, strangers_v: np.ndarray, note: str) -> dict:
    """The model-file entries: the default cut, its false-alarm rate, and the lowest stranger distances
    (up to MAX_FAR of them, so `--far` can pick another rate without the data)."""
    people = np.asarray(people, dtype=object)
    # rounded as stored, so that `--far` later recomputes this very cut from the stored list
    distances = np.round(pooled_distances(vectors, people, strangers_v), 5)
    far = DEFAULT_FAR if len(distances) * DEFAULT_FAR >= 1 else 0.0  # too few strangers to resolve 1%:
    cut = cut_at_far(distances, far) if far else float(distances[0] - 1e-6)  # then name none of them
    gallery = min(GALLERY_PEOPLE, len(np.unique(people)))
    return {"identify_threshold": cut, "identify_far": far,
            "identify_threshold_from": f"{note}: galleries of {gallery} held-out people with up to "
                                       f"{ENROLLED_PHOTOS} photos each, {len(distances)} stranger comparisons",
            "stranger_count": int(len(distances)),
            "stranger_distances": distances[: max(1, int(np.ceil(MAX_FAR * len(distances))) + 1)].tolist()}
