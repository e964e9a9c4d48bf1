"""`keyface cluster`: group unlabelled faces by person (keyface.recognition.core.clustering)."""
from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from keyface.data.errors import KeyfaceError
from keyface.recognition.cli import commands
from keyface.recognition.core.clustering import cluster_faces, cluster_threshold

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add `keyface cluster`."""
    p = sub.add_parser("cluster", help="group the faces in unlabelled photos by person",
                       parents=[commands.WORKERS, commands.RECOGNISER])
    p.add_argument("photos", nargs="+", metavar="PHOTO", help=commands.PHOTOS_HELP)
    p.add_argument("--out", required=True, help="directory for a folder per cluster and index.html")
    p.add_argument("--threshold", type=commands.distance, help="the clustering cut: faces closer than this (cosine "
                   "distance) join one cluster (default: the model's calibrated cluster_threshold)")
    p.set_defaults(func=cmd_cluster)


def cmd_cluster(args) -> int:
    """Embed every face of every photo, cluster them, write the folders and the contact sheet."""
    if Path(args.out).exists() and not Path(args.out).is_dir():  # before the models load, not after
        raise KeyfaceError(f"{args.out} exists and is not a folder")
    workers = commands.photo_workers(args, len(args.photos))
    rec = commands.recogniser(args)
    threshold = cluster_threshold(rec.embedder, args.threshold)
    photos, errors = rec.faces_of(args.photos, workers)
    errors += [f"{photo}: no face found" for photo, _, found, _ in photos if not found]
    faces = [(photo, rgb, face, vector) for photo, rgb, found, vectors in photos for face, vector in zip(found, vectors)]
    if not faces:  # each photo's own reason first: unreadable, a video, no face
        commands.report_errors(errors)
        raise KeyfaceError("no face found in any photo")
    labels = cluster_faces(np.stack([f[3] for f in faces]), threshold)
    _write_clusters(Path(args.out), faces, labels, rec.embedder.name, threshold)
    used = sum(1 for _, _, found, _ in photos if found)  # the others are said, each with its reason, below
    print(f"{_count(len(faces), 'face')} in {_count(used, 'photo')} -> "
          f"{_count(labels.max() + 1, 'cluster')} (embedder {rec.embedder.name}, threshold {threshold:.3f}); "
          f"{Path(args.out) / 'index.html'} written")
    commands.report_errors(errors)
    return 2 if errors else 0


def _write_clusters(out: Path, faces: list, labels: np.ndarray, embedder: str, threshold: float) -> None:
    """cluster-NN/ folders of face crops, clusters.json, and an HTML contact sheet."""
    from keyface.data.files import create_private, jpeg_bytes, private_dir, shown
    private_dir(out)
    ours = [out / f"cluster-{label:03d}" for label in np.unique(labels)] + [out / "clusters.json", out / "index.html"]
    taken = next((p for p in ours if p.exists() or p.is_symlink()), None)
    if taken is not None:  # never delete or write into what is there: the user's, or an earlier run's
        raise KeyfaceError(f"{taken} already exists: keyface does not overwrite it; choose a new --out folder")
    rows, listing = {}, []
    for i, ((photo, rgb, face, _), label) in enumerate(zip(faces, labels)):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        pad = int(0.2 * max(x1 - x0, y1 - y0))
        crop = rgb[max(0, y0 - pad): y1 + pad, max(0, x0 - pad): x1 + pad]
        name = f"cluster-{label:03d}/{i:05d}-{Path(photo).stem[:60]}.jpg"
        private_dir((out / name).parent)
        create_private(out / name, jpeg_bytes(np.ascontiguousarray(crop)))
        rows.setdefault(label, []).append((name, shown(photo)))
        listing.append({"photo": str(photo), "box": [round(float(v), 1) for v in face.box], "cluster": int(label), "crop": name})
    create_private(out / "clusters.json", json.dumps({"embedder": embedder, "threshold": threshold,
                                                      "faces": listing}, indent=1).encode())
    sheet = [f"<section><h2>cluster {label} ({_count(len(items), 'face')})</h2><div>" + "".join(
        # a file name's # ? % are an address's own signs: written as %XX, with its exact bytes
        f'<img src="{html.escape(quote(os.fsencode(n)))}" title="{html.escape(p)}" alt="" height="96">'
        for n, p in items) + "</div></section>"
        for label, items in sorted(rows.items())]
    create_private(out / "index.html", (f"<!doctype html><meta charset='utf-8'><title>keyface clusters</title>"
                                        f"<style>{SHEET_STYLE}</style>"
                                        f"<h1>{_count(len(rows), 'cluster')} of {_count(len(faces), 'face')} "
                                        f"({html.escape(embedder)}, threshold {threshold:.3f})</h1>"
                                        + "\n".join(sheet)).encode())


def _count(n: int, noun: str) -> str:
    """"1 face", "2 faces"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


SHEET_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}"
               "h1{font-size:1.3rem}h2{font-size:1rem;margin:0 0 .4rem}"
               "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem;margin:.8rem 0}"
               "img{border-radius:4px;margin:2px;object-fit:cover}")


