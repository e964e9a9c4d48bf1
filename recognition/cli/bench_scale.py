"""`keyface bench scale`: galleries of 1e4 to 1e6 faces, SQLite exact, SQLite + FAISS and (with --postgres)
PostgreSQL + pgvector side by side."""
from __future__ import annotations

import tempfile
from pathlib import Path

from keyface.recognition.cli.commands import count
from keyface.recognition.cli.tables import print_table, write_report
from keyface.recognition.evaluation.private_postgres import private_postgres_if

COLUMNS = [("faces", "faces", ",d"), ("index", "index", "s"), ("cli_first_s", "CLI first s", ".2f"),
           ("cli_s", "CLI s", ".2f"), ("cli_peak_mb", "CLI MB", ",.0f"), ("index_build_s", "index build s", ".2f"),
           ("p50_ms", "identify p50 ms", ".1f"), ("p99_ms", "p99 ms", ".1f"), ("recall_at_1", "recall@1", ".3f"),
           ("enrol_per_s", "enrol photos/s", ".1f"), ("serve_start_s", "serve start s", ".1f"),
           ("serve_search", "serve search", "s"), ("serve_ready_s", "serve ready s", ".1f"),
           ("serve_p50_ms", "serve p50 ms", ".1f"), ("serve_p99_ms", "serve p99 ms", ".1f"),
           ("serve_peak_mb", "serve MB", ",.0f"), ("process_peak_mb", "process MB", ",.0f"),
           ("load_s", "copy + index s", ".0f")]


def register(kinds, common) -> None:
    """Add `bench scale`."""
    p = kinds.add_parser("scale", help="galleries of 1e4-1e6 faces: CLI identify time and memory, identify "
                         "latency with the index kept, enrol photos/s, FAISS recall@1, SQLite exact and FAISS")
    p.add_argument("--sizes", default="10000,100000,1000000", help="faces in each gallery, comma-separated")
    p.add_argument("--probes", type=count, default=60, help="colleague photos identified per gallery (default: 60)")
    p.add_argument("--no-faiss", action="store_true", help="leave out SQLite + FAISS")
    p.add_argument("--postgres", action="store_true", help="also PostgreSQL + pgvector: each gallery copied into a "
                   "private PostgreSQL 16 (PyPI pgserver) by `keyface migrate`, searched by its HNSW index")
    common(p)
    p.set_defaults(func=run_scale_bench)


def run_scale_bench(args) -> int:
    """Build each gallery, measure it, print the table, write scale.json."""
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.evaluation import scale
    from keyface.recognition.evaluation.protocols import colleagues
    from keyface.recognition.facade import build
    enrol, probes, _ = colleagues(LFW(data_root(args.data)))
    recogniser = build(models=args.models)
    probe_photos = [p for _, p in probes][: args.probes]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out if Path(args.out).is_dir() else None) as scratch:
        with private_postgres_if(args.postgres, Path(scratch) / "pg") as postgres:
            for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
                rows += _size_rows(size, Path(scratch) / f"scale-{size}.db", recogniser, enrol, probes, probe_photos,
                                   args, postgres)
    print(scale.SCALE_PROTOCOL + "\n")
    print_table(rows, COLUMNS)
    write_report(Path(args.out), "scale", {"protocol": scale.SCALE_PROTOCOL, "rows": rows,
                                           "embedder": recogniser.embedder.name})
    return 0


def _size_rows(size: int, path: Path, recogniser, enrol, probes, probe_photos, args, postgres) -> list[dict]:
    """One gallery's rows: SQLite exact, FAISS unless left out, PostgreSQL if asked."""
    from keyface.recognition.evaluation import scale
    from keyface.recognition.evaluation.speed import peak_rss_mb
    from keyface.recognition.facade import Gallery
    faces = scale.fill_gallery(path, recogniser, enrol, size)
    cli = scale.cli_identify(path, probe_photos[0])
    served = scale.served_http(path, probe_photos, path.parent)
    rows = []
    with Gallery(path, recogniser) as gallery:
        exact = scale.served_identify(gallery, probe_photos, "exact")
        rows.append({"faces": faces, "index": "SQLite exact", **cli, **_shown(exact), **served})
        if not args.no_faiss:
            approximate = scale.served_identify(gallery, probe_photos, "faiss")
            rows.append({"faces": faces, "index": "SQLite + FAISS", **_shown(approximate),
                         "recall_at_1": scale.recall_at_1(exact["nearest"], approximate["nearest"])})
        if postgres is not None:  # copied before this gallery's enrolment rate is measured (photos it adds)
            rows.append(_postgres_row(faces, path, recogniser, probes, probe_photos, exact["nearest"], postgres))
        rows[0]["enrol_per_s"] = scale.enrol_rate(gallery, [(n, p) for n, p in probes[len(probe_photos):][:20]])
    rows[0]["process_peak_mb"] = peak_rss_mb()
    scale.remove_gallery(path)
    return rows


def _postgres_row(faces: int, path: Path, recogniser, probes, probe_photos, exact: list, postgres) -> dict:
    """The gallery copied into a new database (`keyface migrate`), then measured as the file was."""
    import time
    from keyface.recognition.evaluation import scale
    from keyface.recognition.facade import Gallery
    from keyface.recognition.upkeep import migrate
    uri = postgres.new_database("scale")
    started = time.perf_counter()
    migrate(path, uri)
    row = {"faces": faces, "index": "PostgreSQL + pgvector HNSW", "load_s": time.perf_counter() - started,
           **scale.cli_identify(uri, probe_photos[0]), **scale.served_http(uri, probe_photos, path.parent)}
    with Gallery(uri, recogniser) as gallery:
        hnsw = scale.served_identify(gallery, probe_photos, "hnsw")
        row.update(_shown(hnsw), recall_at_1=scale.recall_at_1(exact, hnsw["nearest"]))
        row["enrol_per_s"] = scale.enrol_rate(gallery, [(n, p) for n, p in probes[len(probe_photos) + 20:][:20]])
    postgres.drop_database(uri)
    return row


def _shown(measured: dict) -> dict:
    """The measurements, without the per-probe answers."""
    return {k: v for k, v in measured.items() if k != "nearest"}
