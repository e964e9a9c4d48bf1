"""The Python API: a few verbs on photos (paths or RGB numpy arrays), in the spirit of face_recognition's:
`face_locations` (boxes), `face_landmarks` (68 keypoints by region), `face_encodings` (unit embeddings),
`face_distance` and `compare_faces` on embeddings, `draw_faces`, and `find_faces`, `verify` and `Gallery` on top: thin
verbs over the library's one way in (`keyface.recognition.facade`), which the command line and the server
call too. A verb's `recogniser` is one made by `load` or `build`, an embedder's name ("dlib-resnet"), or None
for the default one. Errors are `keyface.KeyfaceError`s worded for a library (no command-line flags)."""
from __future__ import annotations

import logging
import os

import numpy as np

from keyface.data.errors import KeyfaceError, distance_cut, finite_number
from keyface.detection.detector import inside_share, within
from keyface.keypoints.predictor import align_batch
from keyface.recognition.core.pipeline import Face, make_detector
from keyface.recognition.facade import Gallery, build, checked_count, load, recogniser_for, yes_or_no

log = logging.getLogger(__name__)
FoundFace = Face  # the name keyface 0.1 gave a face found by find_faces and identify

Image = str | os.PathLike | np.ndarray  # a photo's path, or RGB uint8 pixels (H, W, 3); a PIL image works too
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in photo pixels
_DETECTORS: dict = {}  # (detector name, min_face) -> a detector face_locations built for another min_face
_DETECTORS_KEPT = 4
_WARNED: set[float] = set()  # the loose tolerances compare_faces has warned of

# face_recognition's names for the iBUG 68 points; "left" and "right" as seen in the image
REGIONS: dict[str, tuple[int, ...]] = {
    "chin": tuple(range(0, 17)), "jaw": tuple(range(0, 17)),
    "left_eyebrow": tuple(range(17, 22)), "right_eyebrow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)), "nose_tip": tuple(range(31, 36)),
    "left_eye": tuple(range(36, 42)), "right_eye": tuple(range(42, 48)),
    "top_lip": tuple(range(48, 55)) + (64, 63, 62, 61, 60),
    "bottom_lip": tuple(range(54, 60)) + (48, 60, 67, 66, 65, 64),
}


def _pixels(image: Image) -> np.ndarray:
    """The photo as RGB uint8 (H, W, 3)."""
    from keyface.data.images import as_rgb
    return as_rgb(image)


def _detector(recogniser, min_face: float | None):
    """The recogniser's detector, or one of its kind looking for faces from `min_face` px wide (kept)."""
    own = recogniser.pipeline.detector
    if min_face is None or finite_number(min_face, "min_face") == getattr(own, "min_face", None):
        return own
    key = (own.name, float(min_face))
    if key not in _DETECTORS:
        detector = make_detector(own.name, float(min_face))  # refuses a min_face under 8 px
        while len(_DETECTORS) >= _DETECTORS_KEPT:
            _DETECTORS.pop(next(iter(_DETECTORS)))
        _DETECTORS[key] = detector
    return _DETECTORS[key]


def face_locations(image: Image, min_face: float | None = None, max_num: int = 0, min_score: float | None = None,
                   recogniser=None) -> list[Box]:
    """Every face's box (x0, y0, x1, y1) inside the photo, left to right; detection only. `max_num` keeps the N
    widest (0: all),
    `min_score` drops boxes the detector scored lower (it can only raise the detector's own cut), `min_face` is
    the smallest face looked for (px wide; default: the recogniser's)."""
    checked_count(max_num, "max_num is how many of the largest faces to keep (0: all)", least=0)
    cut = None if min_score is None else finite_number(min_score, "min_score")
    if cut is not None and not 0 <= cut <= 1:  # a detector's score is a probability: out of it, nothing or all
        raise KeyfaceError(f"min_score is a detector score from 0 to 1, not {min_score!r}")
    rgb = _pixels(image)
    found = _detector(recogniser_for(recogniser), min_face).detect(rgb)
    height, width = rgb.shape[:2]
    boxes = [within(f.box, width, height) for f in found if cut is None or f.score >= cut]  # left to right
    if max_num:  # the widest inside the photo, as largest_face chooses; still left to right
        widest = sorted(range(len(boxes)), key=lambda i: boxes[i][2] - boxes[i][0], reverse=True)[:max_num]
        boxes = [boxes[i] for i in sorted(widest)]
    return boxes


MIN_BOX = 8  # px: the smallest face the command line's --min-face takes
LOOSE_TOLERANCE = 0.5  # a cosine distance: faces 60 degrees apart; different people are rarely further


def _detections(boxes, rgb: np.ndarray) -> list:
    """Given boxes as the detector's faces (score 1, no landmarks); one box (4,) is taken as a list of one.
    Each must lie at least half inside the photo `rgb`: a box beyond its edges holds no face."""
    from keyface.detection.detector import Detection
    try:  # a generator of boxes too, as photos may be one
        array = np.asarray(boxes if isinstance(boxes, (np.ndarray, list, tuple)) else list(boxes), np.float64)
    except (TypeError, ValueError):
        raise KeyfaceError("boxes must be (x0, y0, x1, y1) tuples of numbers, as face_locations gives") from None
    array = array.reshape(1, 4) if array.shape == (4,) else array.reshape(-1, 4) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] != 4:
        raise KeyfaceError(f"boxes must be (x0, y0, x1, y1) tuples, as face_locations gives; not shape {array.shape}")
    if not np.isfinite(array).all() or (array[:, 2] <= array[:, 0]).any() or (array[:, 3] <= array[:, 1]).any():
        # face_recognition's (top, right, bottom, left) puts right and left in places 1 and 3: y0 > y1 here
        theirs = np.isfinite(array).all() and (array[:, 1] > array[:, 3]).all() and (array[:, 2] > array[:, 0]).all()
        raise KeyfaceError("each box must be finite with x0 < x1 and y0 < y1 (pixels: left, top, right, bottom)" +
                           ("; these look like face_recognition's (top, right, bottom, left)" if theirs else ""))
    if (np.minimum(array[:, 2] - array[:, 0], array[:, 3] - array[:, 1]) < MIN_BOX).any():
        raise KeyfaceError(f"a box under {MIN_BOX} px a side holds no face that can be recognised")
    height, width = rgb.shape[:2]
    # a face the edge cuts in half keeps its keypoints; less inside is a corner of the photo, not a face
    mostly_out = inside_share(array, [(0, 0, width, height)]) < 0.5
    if mostly_out.any():
        raise KeyfaceError(f"box {array[mostly_out][0].round(1).tolist()} lies mostly outside the {width}x{height} "
                           f"photo")
    return [Detection(tuple(float(v) for v in row), 1.0) for row in array]


def _faces(rgb: np.ndarray, boxes, recogniser) -> list:
    """The faces (pipeline Face, with keypoints) at the given boxes in their order, or every face found,
    left to right."""
    if boxes is None:
        return recogniser.pipeline.find_faces(rgb)
    return recogniser.pipeline.faces_at(rgb, _detections(boxes, rgb))


def face_landmarks(image: Image, boxes=None, recogniser=None) -> list[dict]:
    """Each face's 68 keypoints by region, as face_recognition gives them: lists of (x, y) named "chin" (also
    "jaw"), "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip", "left_eye", "right_eye", "top_lip",
    "bottom_lip"; plus "all", the (68, 2) array. Left and right are as seen in the image: "left_eye" (iBUG
    points 36-41) is the eye on the photo's left, the person's right. Faces at `boxes` in their order, else
    every face found, left to right."""
    recogniser = recogniser_for(recogniser)
    rgb = _pixels(image)
    found = []
    for face in _faces(rgb, boxes, recogniser):
        points = np.asarray(face.keypoints, np.float32)
        xy = [(float(x), float(y)) for x, y in points]  # lists, so that face_recognition's `eye + [eye[0]]` closes
        found.append({**{name: [xy[i] for i in idx] for name, idx in REGIONS.items()}, "all": points.copy()})
    return found


def face_encodings(image: Image, boxes=None, recogniser=None) -> np.ndarray:
    """Unit embeddings (N, D) of the faces at `boxes` in their order, else of every face found, left to right."""
    recogniser = recogniser_for(recogniser)
    rgb = _pixels(image)
    faces = _faces(rgb, boxes, recogniser)
    return recogniser.embedder.embed(align_batch(rgb, faces, recogniser.embedder.spec))


def _unit(vectors: np.ndarray, what: str) -> np.ndarray:
    """Vectors scaled to length 1 along the last axis; a zero or non-finite one is refused."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if not np.isfinite(vectors).all() or (norms == 0).any():
        raise KeyfaceError(f"{what} must be finite and not all zeros: an embedding has a direction")
    return vectors / norms


def face_distance(known, candidate) -> np.ndarray:
    """Cosine distance (1 - cos, 0 to 2) of each known embedding (N, D) to one candidate (D,); none known: empty."""
    try:
        cand, rows = np.asarray(candidate, np.float64), np.asarray(known, np.float64)
    except (TypeError, ValueError):
        raise KeyfaceError("embeddings must be arrays of numbers, as face_encodings gives") from None
    cand = cand[0] if cand.ndim == 2 and cand.shape[0] == 1 else cand
    if cand.ndim != 1 or cand.size == 0:
        raise KeyfaceError(f"the candidate must be one embedding (D,), not shape {cand.shape}")
    if rows.size == 0:
        return np.zeros(0)
    rows = rows[None] if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != cand.size:
        raise KeyfaceError(f"known embeddings must be (N, {cand.size}) like the candidate, not shape {rows.shape}")
    return np.clip(1.0 - _unit(rows, "known embeddings") @ _unit(cand, "the candidate"), 0.0, 2.0)


def compare_faces(known, candidate, tolerance: float | None = None, recogniser=None) -> list[bool]:
    """Whether each known embedding is the candidate's person: cosine distance <= tolerance, by default the
    recogniser's calibrated verify threshold, a cut for two photos (the embeddings must then be that
    recogniser's; to pick one person out of many, `recogniser.identify_threshold` names fewer strangers).
    face_recognition's tolerance t is a Euclidean distance between unit vectors: t * t / 2 here (0.6: 0.18)."""
    distances = face_distance(known, candidate)
    if tolerance is not None:
        cut = distance_cut(tolerance, "tolerance")
        if cut >= LOOSE_TOLERANCE and cut not in _WARNED:  # once a tolerance: a loop over frames says it once
            _WARNED.add(cut)
            log.warning("compare_faces(tolerance=%g) matches nearly any face: keyface's distance is cosine, 0 to 2; "
                        "face_recognition's tolerance t is t * t / 2 here (0.6: 0.18)", cut)
    else:
        recogniser = recogniser_for(recogniser)
        dim = np.asarray(candidate).size
        if dim != recogniser.embedder.dim:
            raise KeyfaceError(f"embeddings of {dim} numbers are not the {recogniser.embedder.name} model's "
                               f"({recogniser.embedder.dim}): give the recogniser that made them, or a tolerance")
        cut = recogniser.threshold
    return [bool(d <= cut) for d in distances]


def find_faces(image: Image, recogniser=None) -> list[Face]:
    """Every face in a photo, left to right, with its keypoints and embedding."""
    return recogniser_for(recogniser).faces(image)[1]


def find_faces_all(images, recogniser=None, workers: int = 1):
    """find_faces for many photos, `workers` at once (threads), yielded in the order given as (photo, faces), or
    (photo, KeyfaceError) for a photo that cannot be read; the rest go on."""
    from keyface.recognition.facade import WORKERS, in_order, one_or_many
    images, recogniser = one_or_many(images), recogniser_for(recogniser)
    checked_count(workers, WORKERS)
    return in_order(lambda image: recogniser.faces(image)[1], images, workers)


def draw_faces(image: Image, faces: list[Face]) -> np.ndarray:
    """A new RGB array: the photo with each face's box, keypoints and number drawn, and once identified its
    name (green) or "unknown" (red); labels stay readable with dozens of small faces. `faces` are what
    find_faces or Gallery.identify returned for this photo."""
    from keyface.recognition.core.annotate import draw_identities
    faces = list(faces) if hasattr(faces, "__iter__") else [faces]  # one face, or not a face: refused below
    if not all(isinstance(face, Face) for face in faces):
        raise KeyfaceError("draw_faces takes the faces find_faces or Gallery.identify returned")
    rgb = _pixels(image)
    return draw_identities(rgb, faces) if faces else rgb.copy()


def verify(image_a: Image, image_b: Image, recogniser=None, threshold: float | None = None,
           largest_face: bool = False) -> tuple[bool, float]:
    """Whether two photos (one face each) show the same person, and the cosine distance; `threshold` is a
    distance to use instead of the calibrated one, `largest_face` takes a photo's largest face where it
    has several people in it (the default refuses such a photo)."""
    cut = None if threshold is None else distance_cut(threshold, "threshold")
    recogniser = recogniser_for(recogniser)
    chosen = recogniser.taking("largest") if yes_or_no(largest_face, "largest_face") else recogniser
    return chosen.verify(image_a, image_b, cut)


def identify_video(source, gallery, every: int | None = None, fps: float | None = None, start: float = 0.0,
                   end: float | None = None, on_frame=None, top: int = 3):
    """Each track of faces in a video file (a path) or a live camera (an index: 0), named against `gallery` (a
    Gallery, or a gallery file's path), yielded as it closes: a TrackResult with its name (None: unknown),
    distance, first and last time and frame, frames seen and best box. Frames looked at: every `every`-th, or
    `fps` a second (default 15), from `start` to `end` seconds; `on_frame(frame, [(track id, box, name so
    far)])` is called on each (for live use; `frame.rgb` holds its pixels, `frame.time` its time)."""
    from keyface.data.video import Sampling
    sampling = Sampling(every, fps, start, end)
    own = not isinstance(gallery, Gallery)
    people = Gallery(gallery, create=False) if own else gallery
    try:
        yield from people.identify_video(source, top, on_frame, sampling=sampling)
    finally:
        if own:
            people.close()


__all__ = ["Face", "FoundFace", "Gallery", "build", "compare_faces", "draw_faces", "face_distance", "face_encodings",
           "face_landmarks", "face_locations", "find_faces", "find_faces_all", "identify_video", "load", "verify"]
