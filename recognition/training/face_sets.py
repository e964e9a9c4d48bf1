"""Faces of known people for training and benchmarks: LFW photos detected, keypointed, aligned, cached."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.files import write_whole
from keyface.data.images import load_image
from keyface.detection.cache import cache_key, detect_cached
from keyface.keypoints.predictor import InputSpec, align_batch
from keyface.recognition.core.pipeline import FacePipeline

log = logging.getLogger(__name__)


@dataclass
class FaceSet:
    """Aligned faces: crops (N, S, S, C) uint8, keypoints (N, 68, 2) in crop pixels, person, source path."""
    crops: np.ndarray
    keypoints: np.ndarray
    people: np.ndarray
    paths: np.ndarray

    def subset(self, mask) -> "FaceSet":
        """The faces where mask (boolean or index array) selects."""
        return FaceSet(self.crops[mask], self.keypoints[mask], self.people[mask], self.paths[mask])

    def __len__(self) -> int:
        return len(self.crops)


def augment_faces(images, labels):
    """A batch of face crops, each mirrored at random, shifted by up to 6 px, brightness and contrast
    jittered (a tf.data map function: labels pass through)."""
    import tensorflow as tf

    def one(face):
        size = tf.shape(face)
        x = tf.image.random_flip_left_right(face)
        x = tf.image.random_crop(tf.image.resize_with_crop_or_pad(x, size[0] + 12, size[1] + 12), size)
        return tf.image.random_contrast(tf.image.random_brightness(x, 25.0), 0.75, 1.25)
    faces = tf.map_fn(one, tf.cast(images, tf.float32))
    return tf.clip_by_value(faces, 0.0, 255.0), labels


def central_face(faces: list, shape: tuple[int, ...]) -> int | None:
    """Index of the detected face nearest the image centre (LFW's labelled face is the central one)."""
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return int(np.argmin([np.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy) for f in faces]))


def align_central(rgb: np.ndarray, detections: list, pipeline: FacePipeline, spec: InputSpec):
    """The photo's central detected face keypointed and aligned as a one-face FaceBatch, or None."""
    i = central_face(detections, rgb.shape)
    if i is None:
        return None
    return align_batch(rgb, pipeline.faces_at(rgb, [detections[i]]), spec)


def build_face_set(items: list[tuple[str, Path]], pipeline: FacePipeline, spec: InputSpec,
                   progress: bool = True) -> FaceSet:
    """Detect (cached), keypoint and align the central face of each (person, photo); misses are logged."""
    from tqdm import tqdm
    found = detect_cached([p for _, p in items], pipeline.detector, progress=progress)
    crops, points, people, paths = [], [], [], []
    for person, path in tqdm(items, desc="keypoints + alignment", disable=not progress, unit="img"):
        batch = align_central(load_image(path), found[path], pipeline, spec)
        if batch is None:
            continue
        crops.append(batch.crops[0])
        points.append(batch.keypoints[0])
        people.append(person)
        paths.append(str(path))
    if len(crops) < len(items):
        log.warning("no face found in %d of %d photos; they are left out", len(items) - len(crops), len(items))
    return FaceSet(np.asarray(crops, np.uint8), np.asarray(points, np.float32),
                   np.asarray(people, dtype=object), np.asarray(paths, dtype=object))


def cached_face_set(items: list[tuple[str, Path]], pipeline: FacePipeline, spec: InputSpec,
                    cache_dir: Path, model_version: str) -> FaceSet:
    """build_face_set, stored as .npz keyed by the photo list, crop spec, detector and keypoint model version."""
    parts = (sorted((p, str(f)) for p, f in items), spec, model_version)
    if pipeline.detector.name != "mtcnn":  # MTCNN's key is unchanged: the faces the shipped models used
        parts += (cache_key(pipeline.detector),)
    key = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    path = cache_dir / f"faces-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return FaceSet(z["crops"], z["keypoints"], z["people"].astype(object), z["paths"].astype(object))
    faces = build_face_set(items, pipeline, spec)
    write_whole(path, lambda tmp: np.savez(tmp, crops=faces.crops, keypoints=faces.keypoints,
                                           people=faces.people.astype(str), paths=faces.paths.astype(str)),
                suffix=".npz")  # np.savez adds .npz to a name without it
    return faces


def lfw_items(lfw, people: list[str], min_photos: int = 1) -> list[tuple[str, Path]]:
    """(person, photo path) for every photo of the given LFW people who have at least min_photos."""
    items = []
    for person in people:
        photos = lfw.images_of(person)
        if len(photos) >= min_photos:
            items += [(person, p) for p in photos]
    return items
