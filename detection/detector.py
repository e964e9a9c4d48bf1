"""Face detectors by name: BlazeFace (the default: `blazeface`) or MTCNN (`mtcnn`), each finding faces from
`min_face` px wide (24 by default, ~10 px between the eyes) up to the whole photo, with boxes the keypoint
net's crop rule was fitted to (MTCNN's; BlazeFace's are mapped onto them); and a per-user cache of
detections for the benchmarks' many photos.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from keyface.data.errors import KeyfaceError
from keyface.data.files import write_whole
from keyface.detection.boxes import MIN_FACE, Detection, face_from_json, face_to_json

DETECTORS = ("blazeface", "mtcnn")
DEFAULT_DETECTOR = "blazeface"  # chosen by measurement: docs/benchmarks.md, `keyface bench speed`


def make_detector(name: str = DEFAULT_DETECTOR, min_face: float | None = None):
    """A face detector by name that finds faces from min_face px wide (default MIN_FACE); nothing is
    loaded until its first detect(), and only the detector asked for is imported."""
    min_face = MIN_FACE if min_face is None else min_face
    if name == "blazeface":
        from keyface.detection.blazeface import BlazeFaceDetector
        return BlazeFaceDetector(min_face=min_face)
    if name == "mtcnn":
        from keyface.detection.mtcnn import MTCNNDetector
        return MTCNNDetector(min_face=min_face)
    raise KeyfaceError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")


def detection_cache_file(detector: str) -> Path:
    """The per-user cache of one detector's detections, keyed by file content."""
    from keyface.data.paths import user_dir
    return user_dir("cache") / f"detections-{detector}.json"


def cache_key(detector) -> str:
    """What a detector's boxes are cached under: its cache_name, or for a detector without one its name."""
    return getattr(detector, "cache_name", detector.name)


def detect_cached(paths: Iterable[Path], detector, progress: bool = True) -> dict[Path, list[Detection]]:
    """Detect faces in many files, caching results by file content hash in the detector's JSON file."""
    from keyface.data.images import load_image
    from tqdm import tqdm
    paths = list(paths)
    cache_file = detection_cache_file(cache_key(detector))
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    out, dirty = {}, 0
    for path in tqdm(paths, desc="detecting faces", disable=not progress, unit="img"):
        key = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if key not in cache:
            cache[key] = [face_to_json(f) for f in detector.detect(load_image(path))]
            dirty += 1
            if dirty % 500 == 0:
                _write_json(cache_file, cache)
        out[path] = [face_from_json(d) for d in cache[key]]
    if dirty:
        _write_json(cache_file, cache)
    return out


def _write_json(path: Path, obj: dict) -> None:
    """Write JSON whole, so a killed run or another command filling the same cache leaves no half file."""
    write_whole(path, lambda tmp: tmp.write_text(json.dumps(obj)))
