"""`keyface demo`: enrol the shipped LFW sample, identify held-out photos, write a table and an HTML page."""
from __future__ import annotations

import contextlib
import csv
import html
import logging
import time
from importlib import resources
from pathlib import Path

from keyface.data.files import create_private
from keyface.recognition.cli import commands
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER

log = logging.getLogger(__name__)


def demo_root() -> Path:
    """The sample shipped in the package: gallery/<person>/*.jpg, probes/*.jpg, probes.csv."""
    return Path(str(resources.files("keyface.recognition") / "demo"))


def register(sub) -> None:
    """Add `keyface demo`."""
    p = sub.add_parser("demo", help="enrol a small real sample and identify held-out photos (offline)",
                       parents=[commands.PRECISION])
    p.add_argument("--out", default="keyface-demo", help="directory for the gallery, annotated photos and index.html")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER, help=f"embedder to use (default: {DEFAULT_EMBEDDER})")
    p.add_argument("--embedder-model", help="embedder model file (default: models dir, then shipped)")
    p.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
    p.add_argument("--threshold", type=commands.distance, help="unknown beyond this distance (default: the model's)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.set_defaults(func=cmd_demo, gallery=None, largest_face=True)  # LFW photos: the labelled face is the largest


def cmd_demo(args) -> int:
    """Run the demo end to end."""
    from keyface.data.folders import read_person_folders
    from keyface.recognition.facade import Gallery
    started = time.perf_counter()
    root, out = demo_root(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = commands.recogniser(args)
    db = out / "demo-gallery.db"
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)  # the demo always starts from an empty gallery
    with Gallery(db, rec) as gallery, _quiet_about_largest_faces():
        enrolled = 0
        for person, photos in read_person_folders(root / "gallery").items():
            n, errors = gallery.enrol(person, photos)
            enrolled += n
            for e in errors:
                log.warning("%s", e)
        rows = _identify_probes(gallery, root, out)
        people = len(gallery.people())
    _print_rows(rows, people, enrolled, rec, time.perf_counter() - started)
    page = _write_html(rows, out, rec)
    print(f"\nannotated photos and {page} written; the demo's gallery is {db}")
    return 0


@contextlib.contextmanager
def _quiet_about_largest_faces():
    """LFW photos often show someone beside the labelled person, whose face is the largest: which face each of the
    sample's photos gives is known, so the line a photo of several faces gets is held back while the demo runs."""
    pipeline_log = logging.getLogger("keyface.recognition.core.pipeline")
    level = pipeline_log.level
    pipeline_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pipeline_log.setLevel(level)


def _identify_probes(gallery, root: Path, out: Path) -> list[dict]:
    """Identify each held-out photo; annotate it; compare with the truth in probes.csv."""
    from keyface.data.images import load_image
    from keyface.recognition.core.annotate import annotate_identities
    from keyface.recognition.training.face_sets import central_face
    rows = []
    with open(root / "probes.csv", newline="") as fh:
        for item in csv.DictReader(fh):
            photo = root / "probes" / item["photo"]
            for earlier in (out / "photos").glob(f"{photo.stem}_identified*.jpg"):  # this demo's own, from a run before
                earlier.unlink()
            results = gallery.identify(photo, top=3)
            i = central_face(results, load_image(photo).shape)  # LFW labels the central face
            central = None if i is None else results[i]
            name = (central.name or "unknown") if central else "no face"
            distance = central.distance if central and central.matches else float("nan")
            image = annotate_identities(photo, results, out / "photos")
            rows.append({"photo": item["photo"], "truth": item["person"], "said": name, "distance": distance,
                         "ok": name == item["person"], "image": image.relative_to(out).as_posix()})
    return rows


def _print_rows(rows: list[dict], people: int, enrolled: int, rec, seconds: float) -> None:
    print(f"enrolled {enrolled} photos of {people} people (each photo's largest face) with embedder {rec.embedder.name!r} "
          f"(model {rec.embedder.version}); unknown beyond distance {rec.identify_threshold:.3f}\n")
    print(f"{'photo':32} {'truth':18} {'keyface says':18} {'distance':>8}  ok")
    for r in rows:
        print(f"{r['photo']:32} {r['truth']:18} {r['said']:18} {r['distance']:8.3f}  {'yes' if r['ok'] else 'NO'}")
    right = sum(r["ok"] for r in rows)
    print(f"\n{right} of {len(rows)} held-out photos right (strangers must come out 'unknown'); {seconds:.0f} s in all")


def _write_html(rows: list[dict], out: Path, rec) -> Path:
    """A page of annotated probe photos with what keyface said."""
    cards = "\n".join(
        f'<figure class="{"ok" if r["ok"] else "wrong"}"><img src="{html.escape(r["image"])}">'
        f'<figcaption>{html.escape(r["truth"])} &rarr; <b>{html.escape(r["said"])}</b> ({r["distance"]:.3f})'
        f'</figcaption></figure>' for r in rows)
    page = out / "index.html"
    page.unlink(missing_ok=True)  # the demo's own page, made again; owner-only, as its photos are
    create_private(page, f"""<!doctype html><meta charset="utf-8"><title>keyface demo</title>
<style>body{{font-family:sans-serif}} figure{{display:inline-block;margin:6px;padding:4px;border:3px solid}}
.ok{{border-color:#3a3}} .wrong{{border-color:#d33}} img{{width:200px}}</style>
<h1>keyface demo: embedder {html.escape(rec.embedder.name)}, unknown beyond {rec.identify_threshold:.3f}</h1>
<p>Truth &rarr; what keyface said (distance to the nearest enrolled photo). Photos: Labeled Faces in the Wild.</p>
{cards}
""".encode())
    return page
