"""Every answer's one JSON shape, whichever entry point gives it (the command line's --json, `keyface serve`):
a photo's faces, a video's track, a verification. A face's own shape is `Face.to_json`, a track's
`Track.to_json`."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only
    from keyface.recognition.core.pipeline import Face


def photo_json(photo: str, faces: list[Face], error: str | None = None, embedding: bool = False, **fields) -> dict:
    """One photo's answer as every output gives it: the photo, any `fields` (threshold, embedder...), the
    error if it failed, and its faces numbered left to right from 1."""
    return {"photo": photo, **fields, **({"error": error} if error else {}),
            "faces": [face.to_json(n, embedding) for n, face in enumerate(faces, 1)]}


def track_json(video: str, track, threshold: float | None = None, named: bool = True, **fields) -> dict:
    """One track of a video as every output gives it: the video, any `fields` (embedder...), the identify cut
    if named, then the track's own (its mean embedding when not named: embed)."""
    cut = {"threshold": _rounded(threshold)} if named else {}
    return {"video": video, **fields, **cut, **track.to_json(named, embedding=not named)}


def video_error_json(video: str, error: str, threshold: float | None = None, named: bool = True, **fields) -> dict:
    """A video that gave no track (it cannot be read, no face was seen), in its tracks' shape: the video, any
    `fields`, the identify cut if named, and the error."""
    cut = {"threshold": _rounded(threshold)} if named else {}
    return {"video": video, **fields, **cut, "error": error}


def verify_json(same: bool | None, distance: float | None, threshold: float | None,
                error: str | None = None) -> dict:
    """verify's answer as every output gives it; with an error (a photo with no face, say), same and distance
    are null, and so is the threshold where it is the error (a model not calibrated)."""
    if error is not None:
        return {"same": None, "distance": None, "threshold": _rounded(threshold), "error": error}
    return {"same": bool(same), "distance": _rounded(distance), "threshold": _rounded(threshold)}


def _rounded(value: float | None) -> float | None:
    """A distance or cut as every answer gives it: 4 decimals (null stays null)."""
    return None if value is None else round(float(value), 4)
