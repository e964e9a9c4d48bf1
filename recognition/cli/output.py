"""Streaming output: each photo's result printed the moment it is done, as text or one JSON line, with a
progress bar on stderr only when a person is watching it (a terminal) and the batch is worth one."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

JSON_LINES_HELP = ("--json prints JSON Lines: one compact object per photo per line, in the order given, as soon "
                   "as that photo is done. Boxes are [x0, y0, x1, y1] in pixels of the photo (origin top-left, "
                   "after EXIF rotation); coordinates are rounded to 0.1 px, distances to 4 decimals, embeddings to "
                   "6. Faces are numbered left to right (\"face\": 1, 2, ...). A photo that failed has \"error\".")
MIN_PHOTOS_FOR_BAR = 4  # a bar for three photos or fewer is only flicker


def compact(obj) -> str:
    """One JSON line, no spaces."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Stream:
    """Prints result lines as they come; keeps the progress bar (if any) below them on stderr."""

    def __init__(self, bar=None):
        self.bar = bar

    def line(self, text: str) -> None:
        """One line of output on stdout, flushed at once (a pipe reader sees it now, not at the end)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text)
        sys.stdout.flush()

    def error(self, text: str) -> None:
        """A photo's error on stderr, as it happens (the run goes on and exits 2 at the end)."""
        if self.bar is not None:
            self.bar.write(f"keyface: error: {text}", file=sys.stderr)
        else:
            print(f"keyface: error: {text}", file=sys.stderr, flush=True)

    def json(self, obj) -> None:
        """One JSON Lines record."""
        self.line(compact(obj))


@contextmanager
def progress(photos: list, desc: str) -> Iterator[tuple[Callable[[Iterable], Iterable], Stream]]:
    """(count, stream): `count(results)` passes a loop's results through, ticking a tqdm bar on stderr as each
    is handled (when stderr is a terminal and there are more than 3 photos); `stream` prints. The bar counts
    photos done, not photos taken: several may be taken ahead while earlier ones finish."""
    if len(photos) < MIN_PHOTOS_FOR_BAR or not sys.stderr.isatty():
        yield (lambda results: results), Stream()
        return
    from tqdm import tqdm
    bar = tqdm(total=len(photos), desc=desc, unit="photo", file=sys.stderr, leave=False)

    def count(results: Iterable) -> Iterator:
        for result in results:
            yield result
            bar.update(1)
    try:
        yield count, Stream(tqdm)
    finally:
        bar.close()


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
    """Write a benchmark's JSON with the command line and git revision beside its numbers."""
    from keyface.runtime.networks import provenance
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({**report, **provenance()}, indent=2, default=str))
    print(f"\nwritten: {path}")
    return path
