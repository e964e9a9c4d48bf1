"""Training and evaluation samples for keypoint nets, and their tf.data pipelines."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from keyface.data.images import load_image
from keyface.data.youtube_faces import read_frames
from keyface.keypoints.augment import AugmentConfig, augment, warp
from keyface.keypoints.predictor import Scheme, crop_box, crop_matrix, pick_labelled_face, to_channels
from keyface.detection.cache import detect_cached

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """Images (grey or RGB uint8), square crop boxes, (N, P, 2) keypoints (NaN = missing), people."""
    images: list[np.ndarray]
    boxes: np.ndarray
    keypoints: np.ndarray
    people: list[str]
    names: list[str]

    def subset(self, index) -> "Samples":
        """The samples at the given indices."""
        index = list(index)
        return Samples([self.images[i] for i in index], self.boxes[index], self.keypoints[index],
                       [self.people[i] for i in index], [self.names[i] for i in index])

    def __len__(self) -> int:
        return len(self.images)


def youtube_samples(root: Path, split: str, detector, channels: int = 1) -> Samples:
    """youtube_faces_68 frames with crop boxes from the detector rule; frames with no face are skipped."""
    frames = read_frames(root, split)
    found = detect_cached([f.path for f in frames], detector)
    images, boxes, points, people, names = [], [], [], [], []
    for f in frames:
        faces = found[f.path]
        i = pick_labelled_face([face.box for face in faces], f.keypoints)
        if i is None:
            continue
        images.append(to_channels(load_image(f.path), channels))
        boxes.append(crop_box(faces[i].box))
        points.append(f.keypoints)
        people.append(f.person)
        names.append(f"{f.path.parent.name}/{f.path.name}")
    if len(images) < len(frames):
        log.warning("%s: no face detected in %d of %d frames; they are left out",
                    split, len(frames) - len(images), len(frames))
    return Samples(images, np.array(boxes), np.array(points, np.float32), people, names)


def split_by_person(samples: Samples, val_fraction: float, seed: int) -> tuple[Samples, Samples]:
    """Split into train/validation with no person in both (validation must not see train faces)."""
    people = sorted(set(samples.people))
    rng = np.random.default_rng(seed)
    val_people = set(rng.choice(people, max(1, round(val_fraction * len(people))), replace=False))
    val = [i for i, p in enumerate(samples.people) if p in val_people]
    train = [i for i, p in enumerate(samples.people) if p not in val_people]
    return samples.subset(train), samples.subset(val)


def crop_all(samples: Samples, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic crops (N, size, size, C) float32 and keypoints normalised to [-0.5, 0.5]."""
    crops, targets = [], []
    for image, box, pts in zip(samples.images, samples.boxes, samples.keypoints):
        crop, moved = warp(image, pts, crop_matrix(box, size), size)
        crops.append(crop)
        targets.append(moved / size - 0.5)
    x = np.asarray(crops, np.float32)
    return (x[..., None] if x.ndim == 3 else x), np.asarray(targets, np.float32)


def training_dataset(samples: Samples, size: int, scheme: Scheme, batch_size: int, seed: int,
                     aug: AugmentConfig) -> tf.data.Dataset:
    """An endless tf.data pipeline of freshly augmented crops and normalised keypoints."""
    channels = 1 if samples.images[0].ndim == 2 else 3
    epoch = [0]

    def generate():
        rng = np.random.default_rng([seed, epoch[0]])
        epoch[0] += 1
        for i in rng.permutation(len(samples)):
            crop, pts = augment(samples.images[i], samples.keypoints[i], samples.boxes[i], size,
                                scheme, rng, aug)
            yield (crop.reshape(size, size, channels).astype(np.float32), pts / size - 0.5)

    spec = (tf.TensorSpec((size, size, channels), tf.float32),
            tf.TensorSpec((scheme.n_points, 2), tf.float32))
    # repeat(): each pass calls generate() again, so every epoch gets a new shuffle and new augmentations
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec).repeat()
    return dataset.batch(batch_size).prefetch(2)
