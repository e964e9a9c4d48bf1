"""`keyface cluster`: group unlabelled faces by person, and the clustering scores of `bench cluster`.

Average-linkage agglomerative clustering on cosine distances, cut at a distance calibrated on
held-out DevTrain people (the cut with the best pairwise F-measure there, stored in the model
file). The number of people is not given; it comes out of the cut.
"""
from __future__ import annotations

import html
import json
import logging
import sys
from pathlib import Path

import numpy as np

from data.errors import KeyfaceError
from recognition.registry import DEFAULT_EMBEDDER

log = logging.getLogger(__name__)

CLUSTER_PROTOCOL = ("LFW DevTest people with >= 2 photos: the central face of every photo, clustered with no "
                    "number of people given (average linkage, cut where pairwise F is best on held-out DevTrain "
                    "people: the model's calibrated cluster_threshold); scored by pairwise precision / recall / F-measure and NMI "
                    "against the true people. No DevTest person was seen in training.")


def devtest_cluster_items(lfw) -> list[tuple[str, Path]]:
    """(person, photo) of every LFW DevTest person with 2 or more photos: the clustering protocol."""
    return [(person, p) for person, n in lfw.image_count("DevTest").items() if n >= 2 for p in lfw.images_of(person)]


def cluster_faces(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """A cluster label per unit vector: average-linkage groups whose mean cosine distance <= threshold."""
    from sklearn.cluster import AgglomerativeClustering
    if len(vectors) == 0:
        return np.zeros(0, int)
    if len(vectors) == 1:
        return np.zeros(1, int)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                    linkage="average")
    labels = model.fit_predict(np.asarray(vectors, np.float64))
    order = {c: i for i, c in enumerate(np.argsort(-np.bincount(labels)))}  # cluster 0 is the largest
    return np.array([order[c] for c in labels])


def best_cluster_threshold(vectors: np.ndarray, people: np.ndarray) -> float:
    """The cut with the best pairwise F-measure on labelled faces (held-out training-side people)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist
    tree = linkage(pdist(np.asarray(vectors, np.float64), "cosine"), "average")  # one tree, many cuts
    cuts = np.linspace(0.05, 1.5, 59)
    scores = [pairwise_scores(people, fcluster(tree, t, "distance"))["pairwise_f"] for t in cuts]
    return float(cuts[int(np.argmax(scores))])


def cluster_threshold(embedder, given: float | None) -> float:
    """The clustering cut: given, or calibrated into the model file; never guessed."""
    value = given if given is not None else embedder.metadata.get("cluster_threshold")
    if value is None:
        raise KeyfaceError(f"the {embedder.name} model carries no calibrated clustering threshold: pass --threshold "
                           f"(or run `keyface calibrate {embedder.name}`)")
    return float(value)


def pairwise_scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Pairwise precision, recall and F-measure over all face pairs, and NMI."""
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.metrics.cluster import pair_confusion_matrix
    (_, fp), (fn, tp) = pair_confusion_matrix(truth, predicted) // 2  # ordered pairs -> unordered
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"pairwise_precision": float(precision), "pairwise_recall": float(recall), "pairwise_f": float(f),
            "nmi": float(normalized_mutual_info_score(truth, predicted)),
            "clusters": int(len(np.unique(predicted))), "people": int(len(np.unique(truth))), "faces": int(len(truth))}


def register(sub) -> None:
    """Add `keyface cluster`."""
    from recognition.commands import _gallery_flags
    p = sub.add_parser("cluster", help="group the faces in unlabelled photos by person")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--out", required=True, help="directory for a folder per cluster and index.html")
    _gallery_flags(p)  # --threshold here is the clustering cut (default: the model's cluster_threshold)
    p.set_defaults(func=cmd_cluster, embedder=DEFAULT_EMBEDDER)


def cmd_cluster(args) -> int:
    """Embed every face of every photo, cluster them, write the folders and the contact sheet."""
    from recognition.commands import recogniser
    rec = recogniser(args)
    threshold = cluster_threshold(rec.embedder, args.threshold)
    photos, errors = rec.faces_of(args.photos)
    errors += [f"{photo}: no face found" for photo, _, found, _ in photos if not found]
    faces = [(photo, rgb, face, vector) for photo, rgb, found, vectors in photos for face, vector in zip(found, vectors)]
    if not faces:
        raise KeyfaceError("no face found in any photo")
    labels = cluster_faces(np.stack([f[3] for f in faces]), threshold)
    _write_clusters(Path(args.out), faces, labels, rec.embedder.name, threshold)
    print(f"{len(faces)} faces in {len(args.photos)} photos -> {labels.max() + 1} clusters "
          f"(embedder {rec.embedder.name}, threshold {threshold:.3f}); {Path(args.out) / 'index.html'} written")
    for e in errors:
        print(f"keyface: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def _write_clusters(out: Path, faces: list, labels: np.ndarray, embedder: str, threshold: float) -> None:
    """cluster-NN/ folders of face crops, clusters.json, and an HTML contact sheet."""
    from data.files import create_private, jpeg_bytes, private_dir, shown
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
        rows.setdefault(label, []).append((shown(name), shown(photo)))
        listing.append({"photo": str(photo), "box": [float(v) for v in face.box], "cluster": int(label), "crop": name})
    create_private(out / "clusters.json", json.dumps({"embedder": embedder, "threshold": threshold,
                                                      "faces": listing}, indent=1).encode())
    sheet = [f"<h2>cluster {label} ({len(items)} faces)</h2><div>" + "".join(
        f'<img src="{html.escape(n)}" title="{html.escape(p)}" height="96">' for n, p in items) + "</div>"
        for label, items in sorted(rows.items())]
    create_private(out / "index.html", (f"<!doctype html><meta charset='utf-8'><title>keyface clusters</title>"
                                        f"<h1>{len(rows)} clusters of {len(faces)} faces ({html.escape(embedder)}, "
                                        f"threshold {threshold:.3f})</h1>" + "\n".join(sheet)).encode())


def run_cluster(rec, lfw, cache: Path) -> dict:
    """`bench cluster` for one embedder: DevTest people with 2+ photos, clustered and scored."""
    import time

    from recognition.bench_recognition import embed_photos
    items = devtest_cluster_items(lfw)
    vectors, ok = embed_photos(rec, [p for _, p in items], cache)
    truth = np.array([person for person, _ in items], object)[ok]
    started = time.perf_counter()
    threshold = cluster_threshold(rec.embedder, None)
    labels = cluster_faces(vectors[ok], threshold)
    return {**pairwise_scores(truth, labels), "photos_no_face": int((~ok).sum()), "threshold": threshold,
            "cluster_seconds": time.perf_counter() - started}
