"""What the benchmark commands share: the thread count their timings are on, aligned text tables, and the JSON
report with its provenance."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def set_threads(n: int) -> None:
    """Pin TensorFlow and LiteRT to n threads before any op runs, so timings mean 'on n cores'."""
    import tensorflow as tf
    from keyface.runtime import networks as runtime
    runtime.set_threads(n)
    if tf.config.threading.get_intra_op_parallelism_threads() == n == tf.config.threading.get_inter_op_parallelism_threads():
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow already ran in this process (a caller's own, or a test's): it keeps its pools
        log.warning("TensorFlow is already running in this process: its networks keep their thread count, so "
                    "timings are not on %d core(s)", n)


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print rows as an aligned text table; columns are (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append(["-" if r.get(k) is None else format(r[k], f) for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_report(out: Path, name: str, report: dict) -> Path:
    """Write a benchmark's JSON with the command line and git revision beside its numbers: NAME.json, or
    NAME-2.json, ... beside an earlier run's (a result never replaces one)."""
    from keyface.data.files import free_name
    from keyface.runtime.provenance import provenance
    out.mkdir(parents=True, exist_ok=True)
    path = free_name(out / f"{name}.json")
    path.write_text(json.dumps({**report, **provenance()}, indent=2, default=str))
    print(f"\nwritten: {path}")
    return path


REPORT_FILES = ("report.json", "report.md", "report.html")


def report_folder(out: Path) -> Path:
    """--out for a compare report, or a new numbered folder beside it (compare-report-2) when it holds an earlier
    report: said before the work, and a report never replaces one."""
    from keyface.data.files import free_name
    if not any((out / name).exists() for name in REPORT_FILES):
        return out
    new = free_name(out)
    log.warning("%s holds an earlier report, kept: this one goes to %s", out, new)
    return new
