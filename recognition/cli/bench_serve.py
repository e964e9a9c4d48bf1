"""`keyface bench serve`: a load test of real `keyface serve` processes on a gallery file, or with --postgres on
a private PostgreSQL: throughput, latency, errors, lost enrolments, and what a SIGKILL of the server (and, on
PostgreSQL, a restart of the database) mid-load does; on PostgreSQL also how soon a second server sees a
first one's enrolment."""
from __future__ import annotations

import tempfile
from pathlib import Path

from keyface.recognition.cli.commands import count
from keyface.recognition.cli.tables import print_table, write_report
from keyface.recognition.evaluation.private_postgres import private_postgres_if

SERVE_COLUMNS = [("run", "run", "s"), ("requests", "requests", "d"), ("identify_per_s", "identify/s", ".1f"),
                 ("p50_ms", "p50 ms", ".0f"), ("p99_ms", "p99 ms", ".0f"), ("enrol_p50_ms", "enrol p50 ms", ".0f"),
                 ("errors", "errors", "d"), ("killed_after", "fault after", "d"),
                 ("ok_after_fault", "answered after fault", "s"), ("lost_enrolments", "lost enrolments", "d"),
                 ("integrity", "gallery check", "s")]


def register(kinds, common) -> None:
    """Add `bench serve`."""
    p = kinds.add_parser("serve", help="a load test of `keyface serve` on loopback: requests/s, p50/p99 latency, "
                         "errors, lost enrolments; then the same with the server killed (SIGKILL) mid-load")
    p.add_argument("--requests", type=count, default=400, help="identify requests (default: 400)")
    p.add_argument("--clients", type=count, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--enrol-every", type=count, default=10, help="one enrolment after every N identify requests")
    p.add_argument("--no-kill", action="store_true", help="skip the fault runs")
    p.add_argument("--postgres", action="store_true", help="serve a PostgreSQL gallery (a private server started "
                   "from PyPI pgserver), add a run with the database restarted mid-load, and time how soon a second "
                   "server sees a first one's enrolment")
    common(p)
    p.set_defaults(func=cmd_bench_serve)


def cmd_bench_serve(args) -> int:
    """Load a real server process, then the fault runs; check the gallery after each."""
    from keyface.data.lfw import LFW
    from keyface.data.paths import data_root
    from keyface.recognition.evaluation import serve_load as load
    lfw = LFW(data_root(args.data))
    with tempfile.TemporaryDirectory() as scratch:
        with private_postgres_if(args.postgres, Path(scratch) / "pg") as postgres:
            rows, seen = _runs(lfw, Path(scratch), args, postgres)
    protocol = load.LOAD_PROTOCOL.format(clients=args.clients, identify=args.requests, every=args.enrol_every)
    print(protocol + f"; gallery: {'PostgreSQL 16 + pgvector (private server)' if args.postgres else 'SQLite file'}\n")
    print_table(rows, SERVE_COLUMNS)
    for row in rows:
        if row["first_error"]:
            print(f"{row['run']}: first error: {row['first_error']}")
    if seen is not None:
        print(f"two servers on one database: the second named a person {seen * 1000:.0f} ms after the first "
              "acknowledged their enrolment")
    write_report(Path(args.out), "serve", {"protocol": protocol, "postgres": args.postgres, "rows": rows,
                                           "seen_across_s": seen})
    return 0


def _runs(lfw, scratch: Path, args, postgres) -> tuple[list[dict], float | None]:
    """The load run, the fault runs, and (PostgreSQL) the time a second server takes to see an enrolment."""
    from keyface.recognition.evaluation import serve_load as load
    gallery = (lambda: postgres.new_database()) if postgres else (lambda: None)
    rows = [_serve_run("load", lfw, scratch / "load", args, gallery(), fault=None)]
    if not args.no_kill:
        rows.append(_serve_run("SIGKILL mid-load", lfw, scratch / "kill", args, gallery(), fault="kill"))
        if postgres is not None:
            rows.append(_serve_run("PostgreSQL restarted mid-load", lfw, scratch / "restart", args, gallery(),
                                   fault=lambda: load.restart_database(postgres)))
    return rows, (_seen_across(lfw, scratch / "two", postgres.new_database()) if postgres else None)


def _people(lfw) -> list[tuple[str, list]]:
    from keyface.recognition.evaluation import serve_load as load
    people = sorted((p for p, n in lfw.image_count("DevTest").items() if 3 <= n <= 8))
    return [(p, load.photo_bytes(lfw.images_of(p))) for p in people]


def _serve_run(label: str, lfw, folder: Path, args, uri: str | None, fault) -> dict:
    """One run: a fresh server and gallery seeded with 20 people, the load, then the gallery checks. With a
    fault ("kill": SIGKILL of the server; else a function), it strikes once half the requests are answered."""
    from keyface.recognition.evaluation.speed import speed_photos
    from keyface.recognition.evaluation import serve_load as load
    from keyface.recognition.upkeep import check_gallery
    folder.mkdir(parents=True)
    gallery, enrol = uri or folder / "gallery.db", _people(lfw)
    server = load.ServerProcess(gallery, folder / "token")
    try:
        seed = load.run_load(server.url, server.token, load.Jobs([], enrol[:20], 1), 4)
        jobs = load.Jobs(load.photo_bytes(speed_photos(lfw, args.requests)),
                         enrol[20: 20 + args.requests // args.enrol_every], args.enrol_every)
        strike = None if fault is None else (server.kill if fault == "kill" else fault)
        kill_at = None if fault is None else max(1, len(jobs.items) // 2)
        result = load.run_load(server.url, server.token, jobs, args.clients, kill_at, strike)
    finally:
        server.kill() if fault == "kill" else server.stop()
    acknowledged = {**seed["acknowledged"], **result["acknowledged"]}
    problems = check_gallery(gallery)
    return {"run": label, **{k: v for k, v in result.items() if k != "acknowledged"},
            "acknowledged_enrolments": len(acknowledged),
            "lost_enrolments": len(load.lost_enrolments(gallery, acknowledged)),
            "integrity": "ok" if not problems else problems[0]}


def _seen_across(lfw, folder: Path, uri: str) -> float:
    """Two servers on one database: seconds until the second names a person the first enrolled."""
    from keyface.recognition.evaluation import serve_load as load
    folder.mkdir(parents=True)
    people = _people(lfw)
    first = load.ServerProcess(uri, folder / "token-a")
    try:
        second = load.ServerProcess(uri, folder / "token-b")
        try:
            load.run_load(first.url, first.token, load.Jobs([], people[:5], 1), 2)  # a gallery that is not empty
            name, photos = people[5]
            return load.seen_across(first, second, (name, photos[:-1]), photos[-1])
        finally:
            second.stop()
    finally:
        first.stop()
