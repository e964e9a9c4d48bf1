"""What identity models train on: LFW DevTrain people (+ their youtube_faces_68 frames), never DevTest."""
from __future__ import annotations

from pathlib import Path

from keyface.data.lfw import LFW
from keyface.data.youtube_faces import read_frames
from keyface.recognition.training.face_sets import lfw_items


def training_items(root: Path, min_photos: int, youtube: bool, limit: int | None) -> tuple[list, str]:
    """(person, photo) of LFW DevTrain people (+ their youtube_faces_68 frames), and a note saying so."""
    lfw = LFW(root)
    people = lfw.people("DevTrain")[:limit] if limit else lfw.people("DevTrain")
    items = lfw_items(lfw, people, min_photos)
    note = f"LFW DevTrain people with >= {min_photos} photos ({len(items)} photos)"
    if youtube:
        keep = {p for p, _ in items}
        devtest = set(lfw.people("DevTest"))
        frames = [(f.person, f.path) for f in read_frames(root, "train") if f.person in keep and f.person not in devtest]
        items += frames
        note += f" + {len(frames)} youtube_faces_68 training frames of those people"
    return items, note + "; no LFW DevTest person"


def stranger_items(root: Path) -> list:
    """(person, photo) of DevTrain people with a single photo: never trained on (trainers need two)."""
    lfw = LFW(root)
    return lfw_items(lfw, [p for p, n in lfw.image_count("DevTrain").items() if n == 1])
