"""A per-user cache of face detections for the benchmarks' and trainings' many photos, keyed by file content:
one JSON file per detector and settings."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from keyface.data.files import write_whole
from keyface.detection.detector import Detection


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


def face_to_json(face: Detection) -> dict:
    """A JSON-ready dict of a face."""
    return {"box": list(face.box), "score": face.score, "landmarks": [list(p) for p in face.landmarks]}


def face_from_json(d: dict) -> Detection:
    """Inverse of face_to_json."""
    return Detection(tuple(d["box"]), d["score"], tuple(tuple(p) for p in d["landmarks"]))
