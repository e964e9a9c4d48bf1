"""The report of `keyface compare`: JSON, a Markdown table and self-contained HTML with plots."""
from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PROTOCOLS = {
    "View 1": "threshold chosen on pairsDevTrain (2,200 pairs), scored on pairsDevTest (1,000 pairs)",
    "View 2": "10 folds of pairs.txt, each fold's threshold chosen on the other 9 (only for models that never "
              "trained on LFW people)",
    "identification": "colleagues: 47 DevTest people with >= 10 photos, first 5 enrolled, 825 probes; 1,215 "
                      "single-photo DevTest people as strangers",
    "clustering": "DevTest people with >= 2 photos, average linkage cut at the model's distance calibrated on "
                  "held-out DevTrain people (best pairwise F there); the outside peer's cut is chosen the same way "
                  "on a seeded 10% of DevTrain people",
    "training data": "every keyface model trained on LFW DevTrain people (and their youtube_faces_68 frames) only: "
                     "identity-disjoint from every DevTest protocol above"}

COLUMNS = [("approach", "approach"), ("v1_acc", "View 1 acc"), ("v1_auc", "AUC"), ("v1_eer", "EER"),
           ("v1_tar", "TAR@1e-3"), ("v2", "View 2"), ("rank1", "rank-1"), ("dir", "DIR@1%FAR"),
           ("at_cut", "at own cut: right / strangers named"),
           ("cluster_f", "cluster F"), ("nmi", "NMI"), ("ms", "ms/photo"), ("mb", "model MB"),
           ("bytes", "bytes/face"), ("train", "training"), ("retrain", "new person")]


def describe(c) -> dict:
    """What the report says about a contender besides its scores."""
    return {"name": c.name, "label": c.label, "version": c.version, "trained_on": c.trained_on, **c.facts}


def _row(contender: dict, result: dict) -> dict:
    """One table row, formatted."""
    v1, ident, clus, cost = result["view1"], result["identify"], result["cluster"], result["cost"]
    v2 = result["view2"]
    train = contender.get("train_seconds")
    return {"approach": contender["label"], "v1_acc": f"{v1['accuracy']:.3f}", "v1_auc": f"{v1['auc']:.3f}",
            "v1_eer": f"{v1['eer']:.3f}", "v1_tar": f"{v1['tar_at_far_1e-3']:.3f}",
            "v2": "not scored (trained on LFW people)" if "refused" in v2 else f"{v2['accuracy']:.3f} ± {v2['std']:.3f}",
            "rank1": f"{ident['rank1']:.3f}", "dir": f"{ident['dir_at_far_1pct']:.3f}",
            "at_cut": f"{ident['right_at_model_cut']:.3f} / {ident['strangers_named_at_model_cut']:.3f}"
            if "model_cut" in ident else "-",
            "cluster_f": f"{clus['pairwise_f']:.3f}", "nmi": f"{clus['nmi']:.3f}", "ms": f"{cost['end_to_end']:.0f}",
            "mb": f"{contender['model_mb']:.{1 if contender['model_mb'] >= 1 else 2}f}",
            "bytes": str(contender["bytes_per_face"]),
            "train": "outside data" if contender["name"] == "face_recognition"
            or str(contender.get("trained_on", "")).startswith("outside data") else
            (f"{train / 60:.0f} min" if train else "not recorded"),
            "retrain": "no" if contender["new_person_needs_retraining"].startswith("no") else "yes"}


def markdown_table(report: dict) -> str:
    """The headline table in Markdown."""
    rows = [_row(c, report["results"][c["name"]]) for c in report["contenders"]]
    lines = ["| " + " | ".join(t for _, t in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[k] for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def _stage_table(report: dict) -> str:
    """Milliseconds per photo per stage, Markdown."""
    stages = ["decode", "detection", "keypoints", "alignment", "embedding", "search", "end_to_end"]
    lines = ["| approach | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for c in report["contenders"]:
        cost = report["results"][c["name"]]["cost"]
        lines.append(f"| {c['label']} | " + " | ".join(f"{cost[s]:.1f}" if s in cost else "-" for s in stages) + " |")
    return "\n".join(lines)


def _plots(report: dict, out: Path) -> list[Path]:
    """ROC (View 1 DevTest) and CMC (colleagues) curves as PNG files."""
    def each(draw):
        return lambda ax: [draw(ax, c["label"], report["results"][c["name"]]) for c in report["contenders"]]
    return save_curves(out, {"roc": each(_draw_roc), "cmc": each(_draw_cmc)})


def save_curves(out: Path, drawings: dict) -> list[Path]:
    """Each drawing ({name: function of a matplotlib Axes}) as out/NAME.png, with a grid and a legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for name, draw in drawings.items():
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
        draw(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1])
        plt.close(fig)
    return paths


def html_page(title: str, header: str, body: str, images: list[Path]) -> str:
    """A self-contained HTML page: title, header line, body, then the PNG images inline."""
    inline = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in images)
    return ("<!doctype html><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>body{font-family:"
            "sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            f"padding:3px 6px}}</style><h1>{html.escape(title)}</h1><p>{html.escape(header)}</p>{body}"
            f"<h2>Curves</h2>{inline}")


def _draw_roc(ax, label: str, result: dict) -> None:
    roc = result["view1"]["roc"]
    ax.plot(roc["fpr"], roc["tpr"], label=label)
    ax.set(xscale="log", xlim=(1e-3, 1), xlabel="false accept rate (View 1 pairsDevTest)", ylabel="true accept rate")


def _draw_cmc(ax, label: str, result: dict) -> None:
    ax.plot(range(1, 11), result["identify"]["cmc"], marker="o", label=label)
    ax.set(xlabel="rank", ylabel="identification rate (colleagues)", ylim=(0, 1))


def write_report(out: Path, report: dict) -> None:
    """report.json, report.md (with PNG curves beside it) and a self-contained report.html."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plots = _plots(report, out)
    head = (f"keyface compare, {report['created']}, keyface {report.get('keyface_version', '?')}, git "
            f"{report['git_revision']}, {report['threads']} thread(s); "
            f"data checksums {report['data_checksums']}; command `{report['command']}`")
    protocols = "\n".join(f"- **{k}**: {v}" for k, v in report["protocols"].items())
    sources = "\n".join(f"- {c['label']}: {c['trained_on']}" + (f"; weights: {c['source_weights']}"
                        if c.get("source_weights") not in (None, c["trained_on"]) else "")
                        + (f"; run in {c['precision']} with {c['detector']} detection" if c.get("precision") else "")
                        for c in report["contenders"])
    md = (f"# keyface compare\n\n{head}\n\n{markdown_table(report)}\n\nms per photo by stage (the first 30 probe photos):\n\n{_stage_table(report)}"
          f"\n\nProtocols:\n{protocols}\n\nModels:\n{sources}\n\n![ROC](roc.png) ![CMC](cmc.png)\n")
    (out / "report.md").write_text(md)
    body = (f"{html_table(markdown_table(report))}<h2>ms per photo by stage (the first 30 probe photos)</h2>"
            f"{html_table(_stage_table(report))}<h2>Protocols</h2><pre>{html.escape(protocols)}</pre>"
            f"<h2>Models</h2><pre>{html.escape(sources)}</pre>")
    (out / "report.html").write_text(html_page("keyface compare", head, body, plots))


def html_table(markdown: str) -> str:
    """A Markdown pipe table as an HTML table."""
    rows = [line.strip("|").split(" | ") for line in markdown.splitlines() if not line.startswith("|---")]
    cells = ["".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                     for c in row) for i, row in enumerate(rows)]
    return "<table>" + "".join(f"<tr>{c}</tr>" for c in cells) + "</table>"
