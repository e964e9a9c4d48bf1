"""Group faces by person without being told how many people there are.

Average-linkage agglomerative clustering on cosine distances, cut at a distance calibrated on
held-out people (the cut with the best pairwise F-measure there, stored in the model file).
"""
from __future__ import annotations

import numpy as np

from keyface.data.errors import NotCalibratedError


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
        raise NotCalibratedError(f"the {embedder.name} model carries no calibrated clustering threshold: give one, "
                                 "or calibrate the model", embedder.name)
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
