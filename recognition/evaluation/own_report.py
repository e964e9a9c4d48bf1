"""The report of `keyface compare --folders`: JSON, a Markdown table and self-contained HTML with plots."""
from __future__ import annotations

import html
import json
from pathlib import Path

from keyface.recognition.evaluation.report import html_page, html_table, save_curves

COLUMNS = [("approach", "approach"), ("rank1", "rank-1"), ("dir", "DIR@1%FAR"),
           ("at_cut", "at own cut: right / strangers named"), ("v_acc", "verify acc"), ("auc", "ROC AUC"),
           ("cluster_f", "cluster F"), ("unused", "photos unused"), ("ms", "ms/photo"), ("train", "trained in this run"),
           ("mb", "model MB")]
FEW_STRANGERS = 100  # stranger searches under which a 1% false-accept rate cannot be told from 0%
FEW_PROBES = 50  # probes under which one photo moves rank-1 by 2 points or more


def _f(value: float | None) -> str:
    """A rate as the table shows it."""
    return "-" if value is None else f"{value:.3f}"


def _row(entry: dict, result: dict | None, why_missing: str | None) -> dict:
    """One table row: scores, or why the approach is not there."""
    if result is None:
        return {"approach": entry["label"], "rank1": f"not available: {why_missing}", **{k: "" for k, _ in COLUMNS[2:]}}
    ident, verify, clus = result["identify"], result.get("verify", {}), result.get("cluster", {})
    train = ident.get("train_seconds")
    return {"approach": entry["label"], "rank1": _f(ident["rank1"]), "dir": _f(ident["dir_at_far_1pct"]),
            "at_cut": f"{ident['right_at_model_cut']:.3f} / {ident['strangers_named_at_model_cut']:.3f}"
            if "model_cut" in ident else "- (no calibrated cut)",
            "v_acc": _f(verify.get("accuracy")), "auc": _f(verify.get("auc")), "cluster_f": _f(clus.get("pairwise_f")),
            # unreadable files and photos without a face: each a miss in every rate (a head's row: its embedder's)
            "unused": f"{result['photos_no_face']} of {result['photos']}" if "photos" in result else "",
            "ms": f"{result['ms_per_photo']:.0f}",
            "train": f"{train / 60:.2f} min ({ident['folds']} heads)" if train is not None else "no (ready-made)",
            "mb": f"{entry['model_mb']:.1f}" if entry.get("model_mb") else "-"}


def markdown_table(report: dict) -> str:
    """The headline table in Markdown: every approach, scored or not."""
    rows = [_row(e, report["results"].get(e["name"]), report["missing"].get(e["name"])) for e in report["approaches"]]
    lines = ["| " + " | ".join(t for _, t in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[k] for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def _plots(report: dict, out: Path) -> list[Path]:
    """ROC (all pairs of your photos) and CMC (pooled over the folds) as PNG files."""
    scored = [(e["label"], report["results"][e["name"]]) for e in report["approaches"] if e["name"] in report["results"]]

    def roc(ax):
        for label, result in scored:
            if "roc" in result.get("verify", {}):
                ax.plot(result["verify"]["roc"]["fpr"], result["verify"]["roc"]["tpr"], label=label)
        ax.set(xscale="log", xlim=(1e-3, 1), xlabel="false accept rate (pairs of your photos)", ylabel="true accept rate")

    def cmc(ax):
        for label, result in scored:
            ax.plot(range(1, 11), result["identify"]["cmc"], marker="o", label=label)
        ax.set(xlabel="rank", ylabel="identification rate (probes, pooled over folds)", ylim=(0, 1.02))
    return save_curves(out, {"roc": roc, "cmc": cmc})


def sample_note(report: dict) -> str:
    """How many probes, stranger searches and pairs every rate is a share of, and what that is too few for."""
    scored = next((r for r in report["results"].values() if "verify" in r), None)
    if scored is None:
        return ""
    probes, strangers = scored["identify"]["probes"], scored["identify"]["strangers"]
    note = (f"Each identify rate is a share of {probes} probe photos and {strangers} stranger searches (pooled "
            f"over the folds), verify accuracy of {scored['verify'].get('pairs', 0)} pairs.")
    if strangers < FEW_STRANGERS:
        note += (f" With under {FEW_STRANGERS} stranger searches a 1% false-accept rate cannot be measured: "
                 "DIR@1%FAR is the rate with no stranger named.")
    if probes < FEW_PROBES:
        note += f" With under {FEW_PROBES} probes one photo moves rank-1 by {100 / max(probes, 1):.0f} points or more."
    return note


def _header(report: dict) -> str:
    """Who made the report, on what."""
    return (f"keyface compare --folders {report['tree']}, {report['created']}, keyface {report['keyface_version']}, "
            f"git {report['git_revision']}, {report['threads']} thread(s), seed {report['seed']}: "
            f"{report['people']} people ({report['people_one_photo']} with one photo), {report['photos']} photos, "
            f"{len(report['folds'])} folds; command `{report['command']}`")


def write_report(out: Path, report: dict) -> None:
    """report.json, report.md (with PNG curves beside it) and a self-contained report.html."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plots = _plots(report, out)
    protocols = "\n".join(f"- **{k}**: {v}" for k, v in report["protocols"].items())
    sources = "\n".join(f"- {e['label']}: {e['trained_on']}" for e in report["approaches"])
    kept = report["models_kept"] or "none: the heads trained in this run were discarded (--keep-models keeps them)"
    md = (f"# keyface compare on your people\n\n{_header(report)}\n\n{markdown_table(report)}\n\n{sample_note(report)}\n\n"
          f"Protocols:\n{protocols}\n\nModels:\n{sources}\n\nModels kept: {kept}\n\n![ROC](roc.png) ![CMC](cmc.png)\n")
    (out / "report.md").write_text(md)
    body = (f"{html_table(markdown_table(report))}<p>{html.escape(sample_note(report))}</p><h2>Protocols</h2><pre>{html.escape(protocols)}</pre><h2>Models"
            f"</h2><pre>{html.escape(sources)}</pre><p>Models kept: {html.escape(str(kept))}</p>")
    (out / "report.html").write_text(html_page("keyface compare on your people", _header(report), body, plots))
