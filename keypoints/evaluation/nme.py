"""Keypoint accuracy: NME (300-W, outer eye corners), RMSE, per-group error, CED curve, failures."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keyface.keypoints.losses import nme
from keyface.keypoints.predictor import Scheme

FAILURE_NME = 0.08


def keypoint_metrics(y_true: np.ndarray, y_pred: np.ndarray, scheme: Scheme) -> dict:
    """Accuracy figures for (N, P, 2) predictions against labels, both in photo pixels."""
    per_image = nme(y_true, y_pred, scheme.outer_eye_corners)
    norm = np.linalg.norm(y_true[:, scheme.outer_eye_corners[0]] - y_true[:, scheme.outer_eye_corners[1]], axis=-1)
    point_err = np.linalg.norm(y_true - y_pred, axis=-1)  # (N, P) pixels
    groups = {g: float(np.nanmean(point_err[:, list(idx)] / norm[:, None])) for g, idx in scheme.groups.items()}
    return {"faces": int(len(per_image)), "nme": float(np.mean(per_image)), "nme_median": float(np.median(per_image)),
            "rmse_px": float(np.sqrt(np.nanmean(point_err ** 2))),
            "failure_rate": float(np.mean(per_image > FAILURE_NME)), "nme_by_group": groups,
            "auc_0.08": float(ced_auc(per_image, FAILURE_NME))}


def ced_auc(per_image: np.ndarray, limit: float) -> float:
    """Area under the cumulative error distribution up to limit, normalised to [0, 1]."""
    xs = np.linspace(0, limit, 161)
    ys = [(per_image <= x).mean() for x in xs]
    return float(np.trapezoid(ys, xs) / limit)


def plot_ced(curves: dict[str, np.ndarray], path: Path, limit: float = 0.15) -> Path:
    """Plot cumulative error distributions (one per model) to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = np.linspace(0, limit, 300)
    for label, errors in curves.items():
        ax.plot(xs, [(errors <= x).mean() for x in xs], label=f"{label} (NME {errors.mean():.4f})")
    ax.axvline(FAILURE_NME, color="grey", ls=":", lw=1)
    ax.set(xlabel="NME (outer-eye-corner normalised)", ylabel="fraction of faces", xlim=(0, limit), ylim=(0, 1),
           title="Cumulative error distribution")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
