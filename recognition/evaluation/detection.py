"""How often a face detector finds the face: every LFW photo the benchmarks read, every youtube_faces_68 frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keyface.data.youtube_faces import read_frames
from keyface.detection.cache import detect_cached
from keyface.recognition.evaluation.compare import protocol_photos, protocol_sets

DETECTION_PROTOCOL = ("LFW: every photo any benchmark reads (View 1 and 2 pairs, colleagues, clustering and its "
                      "calibration), found = at least one face; youtube_faces_68: every labelled frame (train and "
                      "test), found = a face box whose centre lies inside the labelled keypoints' bounding box")


def labelled_face_found(boxes: list, keypoints: np.ndarray) -> bool:
    """Whether any box's centre lies inside the bounding box of the labelled keypoints."""
    x0, y0 = np.nanmin(keypoints, axis=0)
    x1, y1 = np.nanmax(keypoints, axis=0)
    return any(x0 <= (b[0] + b[2]) / 2 <= x1 and y0 <= (b[1] + b[3]) / 2 <= y1 for b in boxes)


def detection_rates(lfw, root: Path, detector) -> dict:
    """Share of LFW benchmark photos with a face and of youtube_faces_68 frames with their face found."""
    photos = protocol_photos(protocol_sets(lfw), with_view2=True)
    frames = read_frames(root, "train") + read_frames(root, "test")
    found = detect_cached(photos + [f.path for f in frames], detector)
    lfw_found = sum(bool(found[p]) for p in photos)
    yt_found = sum(labelled_face_found([face.box for face in found[f.path]], f.keypoints) for f in frames)
    return {"detector": detector.name, "lfw_photos": len(photos), "lfw_found": lfw_found,
            "lfw_rate": lfw_found / len(photos), "youtube_frames": len(frames), "youtube_found": yt_found,
            "youtube_rate": yt_found / len(frames)}
