"""Faces at every size: detection on group canvases, video-sized frames and real multi-face LFW photos,
and identification of the colleagues in group canvases (`keyface bench detect`, `bench identify --group`)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keyface.data.crowd import Source, make_canvases, match_faces
from keyface.data.images import load_image
from keyface.detection.detector import Detection
from keyface.detection.cache import detect_cached
from keyface.recognition.core.pipeline import make_detector

log = logging.getLogger(__name__)

SIZE_BINS = (0, 20, 24, 32, 48, 64, 96, 150, 10_000)  # face width in px: recall is reported per bin
CANVAS_PROTOCOL = (
    "Canvases: LFW DevTest photos (no model here trained on their people), each cut ~1.6x around its one face "
    "and pasted at a random size (log-uniform) and place on a procedural background with no faces: group photos "
    "of 1600x1200 to 4000x3000 with 20-150 px faces, and video-sized frames (640x480, 1280x720, 1920x1080) with "
    "24-200 px faces; a quarter of the faces rotated up to 25 degrees, a fifth blurred, half the canvases "
    "re-encoded as JPEG (quality 40-85). Truth: the face's MTCNN box in its source photo, carried onto the "
    "canvas. A face is found when a box's centre lies within 0.35 face widths of the truth's and its width is "
    "0.5-2x the truth's (one box per face, so any detector's box shape counts); every other box is false. "
    "Seeded: every detector sees the same canvases.")
REAL_PROTOCOL = (
    "Real multi-face LFW photos: every LFW DevTest photo in which MTCNN or face_recognition's HOG (where "
    "installed) finds two or more faces; truth is the union of their faces (matched as above). Boxes that "
    "neither found are counted as unconfirmed, not as false: they may be faces both missed.")


@dataclass
class DetectionTally:
    """One detector's results over a set of canvases."""
    detector: str
    sizes: list[float] = field(default_factory=list)      # every truth face's width
    found: list[bool] = field(default_factory=list)       # whether it was found
    false_boxes: int = 0
    photos: int = 0
    ms_by_megapixels: dict[float, list[float]] = field(default_factory=dict)

    def add(self, truth: list, boxes: list, seconds: float | None = None, shape: tuple = ()) -> None:
        """Score one photo: its true face boxes against the boxes found (and the time, for a photo of shape)."""
        matched, false = match_faces(truth, boxes)
        self.sizes += [t[2] - t[0] for t in truth]
        self.found += [m is not None for m in matched]
        self.false_boxes += len(false)
        self.photos += 1
        if seconds is not None:
            self.ms_by_megapixels.setdefault(round(shape[0] * shape[1] / 1e6, 1), []).append(1000 * seconds)

    def row(self) -> dict:
        """Recall by face size, false boxes per photo and ms per photo by image size."""
        sizes, found = np.asarray(self.sizes), np.asarray(self.found, bool)
        row = {"detector": self.detector, "photos": self.photos, "faces": len(sizes),
               "recall": float(found.mean()) if len(found) else None,
               "false_per_photo": self.false_boxes / max(self.photos, 1)}
        for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:]):
            inside = (sizes >= lo) & (sizes < hi)
            row[f"recall_{lo}_{hi}"] = float(found[inside].mean()) if inside.any() else None
            row[f"faces_{lo}_{hi}"] = int(inside.sum())
        row["ms_by_megapixels"] = {str(mp): float(np.median(ms)) for mp, ms in sorted(self.ms_by_megapixels.items())}
        return row


class HogPeer:
    """face_recognition's HOG detector (dlib), as a keyface detector: Detections (x0, y0, x1, y1; no score
    of its own), upsampled once as face_recognition does by default; its boxes cache like keyface's."""

    name = "face_recognition HOG"
    cache_name = "face_recognition-hog-up1"

    def __init__(self):
        import face_recognition
        self._locate = face_recognition.face_locations

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in an RGB image."""
        return [Detection((float(left), float(top), float(right), float(bottom)), 1.0)
                for top, right, bottom, left in self._locate(rgb, number_of_times_to_upsample=1)]


def hog_peer() -> HogPeer | None:
    """The HOG peer where face_recognition is installed, else None (the report says so)."""
    try:
        return HogPeer()
    except ImportError:
        log.info("face_recognition is not installed: its HOG detector is not scored")
        return None


def canvas_sources(lfw, split: str = "DevTest", people: set[str] | None = None) -> list[Source]:
    """Photos of a split's people (or of `people`) whose one face MTCNN finds alone, with its box."""
    names = sorted(people) if people is not None else lfw.people(split)
    photos = [(person, path) for person in names for path in lfw.images_of(person)]
    log.info("canvas faces: the photos of %d people whose one face MTCNN finds (detected once, then cached)",
             len(names))
    found = detect_cached([p for _, p in photos], make_detector("mtcnn"))
    return [Source(person, path, found[path][0].box) for person, path in photos if len(found[path]) == 1]


def score_canvases(kind: str, count: int, sources: list[Source], detectors: list, seed: int) -> list[dict]:
    """Every detector on the same `count` seeded canvases of a kind ("group" or "video"); a row each."""
    from tqdm import tqdm
    tallies = [DetectionTally(d.name if not hasattr(d, "min_face") else f"{d.name} (min {d.min_face:g} px)")
               for d in detectors]
    canvases = make_canvases(kind, count, sources, seed, load_image)
    for canvas in tqdm(canvases, total=count, desc=f"{kind} canvases", unit="canvas"):
        for detector, tally in zip(detectors, tallies):
            started = time.perf_counter()
            boxes = [f.box for f in detector.detect(canvas.image)]
            tally.add([f.box for f in canvas.faces], boxes, time.perf_counter() - started, canvas.image.shape)
    return [{"set": kind, **t.row()} for t in tallies]


def score_real_photos(lfw, detectors: list, hog: HogPeer | None) -> list[dict]:
    """Each detector on the LFW DevTest photos where MTCNN or HOG sees several faces, against their union."""
    from keyface.data.crowd import face_match
    paths = [p for person in lfw.people("DevTest") for p in lfw.images_of(person)]
    mtcnn = detect_cached(paths, make_detector("mtcnn"))
    hog = _hog_cached(paths, hog) if hog else {p: [] for p in paths}
    truth = {}
    for p in paths:
        union = [f.box for f in mtcnn[p]] + [b for b in hog[p] if not any(face_match(m.box, b) for m in mtcnn[p])]
        if len(union) >= 2:
            truth[p] = union
    rows = []
    for detector in detectors:
        found = detect_cached(list(truth), detector, progress=False)
        tally = DetectionTally(detector.name)
        for p, boxes in truth.items():
            tally.add(boxes, [f.box for f in found[p]])
        row = tally.row()
        row["unconfirmed_per_photo"] = row.pop("false_per_photo")  # boxes neither peer found: maybe faces
        rows.append({"set": "LFW multi-face", **row})
    return rows


def _hog_cached(paths: list[Path], hog: HogPeer) -> dict[Path, list]:
    """HOG boxes for many photos, cached like keyface's own detections."""
    return {p: [f.box for f in faces] for p, faces in detect_cached(paths, hog).items()}


GROUP_IDENTIFY_PROTOCOL = (
    "Group identification: the colleagues protocol's gallery (LFW DevTest people with >= 10 photos, their "
    "first 5 photos enrolled); group canvases (1600x1200 to 4000x3000, 20-150 px faces, made as in `bench "
    "detect`) of their other photos and of strangers (DevTest people with a single photo). Each canvas goes "
    "through the whole pipeline as a user's photo would (every face found, keypoints, alignment, embedding); "
    "a found face is right when it is named as its person, or 'unknown' for a stranger, at the model's stored "
    "identify cut. Every model scored here trained on DevTrain people only.")
IDENTIFY_BINS = (20, 32, 40, 64, 10_000)


def run_group_identify(rec, lfw, count: int, seed: int = 0) -> dict:
    """Found, right and wrongly named faces in `count` seeded group canvases, overall and by face size."""
    from tqdm import tqdm
    from keyface.recognition.core.search import nearest_people
    from keyface.recognition.evaluation.protocols import colleagues, embed_photos
    enrol, probes, strangers = colleagues(lfw)
    g_v, g_ok = embed_photos(rec, [p for _, p in enrol])
    g_names = np.array([n for n, _ in enrol], dtype=object)[g_ok]
    unseen = {p for _, p in probes + strangers}
    sources = [s for s in canvas_sources(lfw, people={n for n, _ in probes + strangers}) if s.photo in unseen]
    cut, enrolled = rec.identify_threshold, set(g_names)
    sizes, found, right, wrong, clean, nearest = [], [], [], [], [], []
    for canvas in tqdm(make_canvases("group", count, sources, seed, load_image), total=count,
                       desc="group identification", unit="canvas"):
        _, faces, vectors = rec.faces(canvas.image)
        best = nearest_people(vectors, g_v[g_ok], g_names, k=1) if len(faces) else []
        names = [m[0].person if m and m[0].distance <= cut else None for m in best]
        matched, _ = match_faces([f.box for f in canvas.faces], [f.box for f in faces])
        for truth, i in zip(canvas.faces, matched):
            expected = truth.person if truth.person in enrolled else None
            sizes.append(truth.size)
            found.append(i is not None)
            right.append(i is not None and names[i] == expected)
            wrong.append(i is not None and names[i] is not None and names[i] != expected)
            clean.append(not truth.blurred and truth.rotation == 0 and canvas.jpeg_quality is None)
            if i is not None and best[i]:
                nearest.append((best[i][0].distance, best[i][0].person == expected, expected is None))
    row = _group_row(np.asarray(sizes), np.asarray(found), np.asarray(right), np.asarray(wrong), count, cut)
    # what the degradations cost: faces pasted as they are (no blur, no rotation, no JPEG) against the rest
    row["by_condition"] = {name: _group_row(*(np.asarray(a)[keep] for a in (sizes, found, right, wrong)), count, cut)
                           for name, keep in (("as shot", np.asarray(clean)), ("degraded", ~np.asarray(clean)))}
    row["best_cut"] = best_cut(nearest)
    return row


def best_cut(nearest: list[tuple[float, bool, bool]]) -> dict:
    """The cut that would make the most found faces right, chosen on these very faces: an upper bound on what
    any cut can reach with this embedder, not a figure to quote (a real cut comes from other people).
    `nearest`: per found face, the distance to its nearest person, whether that person is its name, and
    whether it is a stranger (right only when nothing is within the cut)."""
    if not nearest:
        return {"cut": None, "right_of_found": None}
    d, named_right, stranger = (np.array(column) for column in zip(*nearest))
    cuts = np.concatenate([[0.0], np.sort(d)])
    right = [np.sum(named_right & (d <= c)) + np.sum(stranger & (d > c)) for c in cuts]
    k = int(np.argmax(right))
    return {"cut": float(cuts[k]), "right_of_found": float(right[k]) / len(d)}


def _group_row(sizes, found, right, wrong, canvases: int, cut: float) -> dict:
    """Shares of faces found, of found faces right and of found faces wrongly named, overall and per size bin."""
    def shares(inside):
        n, f = int(inside.sum()), int((found & inside).sum())
        return {"faces": n, "found": f / max(n, 1), "right_of_found": int((right & inside).sum()) / max(f, 1),
                "wrong_of_found": int((wrong & inside).sum()) / max(f, 1)}
    row = {"canvases": canvases, "identify_cut": float(cut), **shares(np.ones(len(sizes), bool))}
    row["by_size"] = {f"{lo}-{hi}": shares((sizes >= lo) & (sizes < hi)) for lo, hi in zip(IDENTIFY_BINS, IDENTIFY_BINS[1:])}
    return row
