"""The colleagues protocol on tight grey face crops: what a hold-out set of face crops looks like.

Hold-out sets are often faces cropped close, in grey, at ~92x112 px. LFW's colleagues photos cut that way
show how each approach fares on them: rank-1, and how many are named at the model's own open-set cut.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from keyface.data.images import load_image, save_image
from keyface.detection.cache import cache_key, detect_cached
from keyface.recognition.evaluation.protocols import colleagues

log = logging.getLogger(__name__)

TIGHT_SIZE = (92, 112)  # width, height
TIGHT_PROTOCOL = ("the colleagues protocol on tight grey crops of the same LFW DevTest photos: each photo cut to "
                  "its largest face's detected box (the default detector's), greyscaled and resized to 92x112, so "
                  "the face fills the frame; the crops are then detected, keypointed and embedded like any photo. "
                  "'pair threshold' columns name a face when its distance is within the model's verification "
                  "threshold, as identify did before it had an open-set cut (before c404103)")


def tight_grey_crop(rgb: np.ndarray, box) -> np.ndarray | None:
    """The face box (x0, y0, x1, y1) cut out, greyscaled and resized to 92x112, as RGB uint8 (grey in all
    three); None when the box holds no pixel of the photo."""
    import cv2
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    grey = cv2.cvtColor(cv2.resize(rgb[y0:y1, x0:x1], TIGHT_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[:, :, None], 3, axis=2)


def tight_crop_files(items: list[tuple[str, Path]], detector, folder: Path) -> list[tuple[str, Path]]:
    """(person, crop file) for each (person, photo) whose photo has a face; crops are made once and kept."""
    found = detect_cached([p for _, p in items], detector)
    folder.mkdir(parents=True, exist_ok=True)
    crops = []
    for person, path in items:
        crop = folder / (hashlib.sha256(f"{path}|{cache_key(detector)}".encode()).hexdigest()[:16] + ".png")
        if not crop.is_file() and found[path]:
            box = max(found[path], key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).box
            pixels = tight_grey_crop(load_image(path), box)
            if pixels is not None:
                save_image(crop, pixels)
        if crop.is_file():
            crops.append((person, crop))
    if len(crops) < len(items):  # the protocol's counts shrink by these: say so
        log.warning("%d of %d photos have no face to crop; they are left out", len(items) - len(crops), len(items))
    return crops


def tight_colleagues(lfw, detector, folder: Path) -> tuple[list, list, list]:
    """The colleagues protocol's (enrol, probes, strangers) as tight grey crops."""
    return tuple(tight_crop_files(items, detector, folder) for items in colleagues(lfw))
