"""Reader for youtube_faces_68: frames with 68 iBUG keypoints (Udacity P1 Facial Keypoints)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from keyface.data.errors import DataError
from keyface.data.paths import require_file

SPLITS = {"train": ("training", "training_frames_keypoints.csv"),
          "test": ("test", "test_frames_keypoints.csv")}
# File names are Person_Name_VF.jpg: V = video digit, F = frame digit.
_PERSON_RE = re.compile(r"^(?P<person>.+)_\d\d\.jpg$", re.IGNORECASE)


@dataclass(frozen=True)
class Frame:
    """One labelled frame: its path, the person shown and the (68, 2) keypoints in pixels."""
    path: Path
    person: str
    keypoints: np.ndarray


def person_of(file_name: str) -> str:
    """Return the LFW-style person name of a frame file name ('Luis_Fonsi_21.jpg' -> 'Luis_Fonsi')."""
    match = _PERSON_RE.match(file_name)
    if not match:
        raise DataError(f"unexpected youtube_faces_68 file name: {file_name}")
    return match.group("person")


def read_frames(root: Path, split: str) -> list[Frame]:
    """Read the labelled frames of one split ('train' or 'test') under root/youtube_faces_68."""
    if split not in SPLITS:
        raise DataError(f"unknown youtube_faces_68 split {split!r}; use one of {sorted(SPLITS)}")
    folder, csv_name = SPLITS[split]
    base = Path(root) / "youtube_faces_68"
    csv_path = require_file(base / csv_name, "youtube_faces_68 keypoint file")
    table = _read_table(csv_path)
    frames = []
    for row in table.itertuples(index=False):
        name, values = row[0], np.asarray(row[1:], dtype=np.float32)
        path = base / folder / name
        if not path.is_file():
            raise DataError(f"{csv_path}: image {path} listed but missing")
        frames.append(Frame(path, person_of(name), values.reshape(68, 2)))
    return frames


def _read_table(csv_path: Path) -> pd.DataFrame:
    """Load and validate the CSV: a name column then 136 numeric columns."""
    try:
        table = pd.read_csv(csv_path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{csv_path}: not a readable CSV ({exc.__class__.__name__})") from None
    if table.shape[1] != 137:
        raise DataError(f"{csv_path}: expected 137 columns (name + 136 coordinates), got {table.shape[1]}")
    coords = table.iloc[:, 1:].apply(pd.to_numeric, errors="coerce")
    bad = coords.isna().any(axis=1).to_numpy().nonzero()[0]
    if len(bad):
        raise DataError(f"{csv_path}: row {bad[0] + 2} has a missing or non-numeric coordinate")
    return pd.concat([table.iloc[:, :1], coords], axis=1)
