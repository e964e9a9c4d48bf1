"""`keyface bench scale`: what a gallery of 1e4 to 1e6 faces costs, SQLite exact (the memory-mapped vector
file), SQLite + FAISS and PostgreSQL + pgvector side by side.

Each gallery holds the colleagues protocol's 47 LFW DevTest people (their first 5 photos, embedded by the
default pipeline) and random unit vectors of 1,000 distractor people up to its size, written straight into
its tables; the probes are the colleagues' other photos.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCALE_PROTOCOL = (
    "Scale protocol: each gallery holds the 47 LFW DevTest colleagues (5 photos each, embedded by the default "
    "pipeline) and random unit vectors of 1,000 distractor people up to its size. CLI identify: wall time and "
    "peak memory of `keyface identify` of one colleague photo in a fresh process (the model load included), "
    "the first call after the gallery was written (it builds the vector file and checks the file) and the "
    "median of the next three. Identify in a server: p50/p99 of Gallery.identify with the index kept, as "
    "`keyface serve` does, on the colleagues' other photos. Enrol: photos/s adding colleague photos to the "
    "large gallery. recall@1: share of probes whose nearest person by FAISS (IVF over 8-bit rows, nprobe 16, its 64 "
    "candidates re-ranked exactly from the vector file; what the server uses) is exact's. "
    "serve: `keyface serve` on the gallery in a child process, time until it answers, its search once any "
    "approximate index (FAISS IVF-SQ8, from 200,000 faces) is built after the first identify, and the time that "
    "took, then p50/p99 of HTTP identify (one client; the first request left out) and its peak resident memory. PostgreSQL: the same gallery copied by "
    "`keyface migrate` into a private PostgreSQL 16 + pgvector 0.6.2 on this machine (copy and HNSW index build "
    "timed), searched in the database by the HNSW index (ef_search 100, 64 candidates ranked by person); its "
    "recall@1 is against SQLite exact; the database server's own memory is not in the MB columns.")


def fill_gallery(path: Path, recogniser, enrol: list, size: int, seed: int = 0) -> int:
    """A gallery of the colleagues' photos plus distractor vectors up to `size` faces; the faces in it."""
    from keyface.recognition.facade import Gallery
    with Gallery(path, recogniser) as gallery:
        for person in sorted({n for n, _ in enrol}):
            gallery.enrol(person, [p for n, p in enrol if n == person], largest_face=True)
        real = sum(gallery.people().values())
    conn = sqlite3.connect(path)
    dim, rng = recogniser.embedder.dim, np.random.default_rng(seed)
    with conn:
        conn.executemany("INSERT INTO people (name) VALUES (?)", [(f"distractor {i:04d}",) for i in range(1000)])
        first = conn.execute("SELECT MIN(id) FROM people WHERE name LIKE 'distractor %'").fetchone()[0]
        for start in range(0, max(0, size - real), 100_000):
            _add_distractors(conn, recogniser.embedder, first, start, min(100_000, size - real - start), rng, dim)
    conn.close()
    return max(size, real)


def _add_distractors(conn, embedder, first: int, start: int, count: int, rng, dim: int) -> None:
    """`count` random unit vectors as photos of the distractor people."""
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM photos").fetchone()[0]
    conn.executemany("INSERT INTO photos (id, person_id, sha256, source, box, keypoints) VALUES (?,?,?,?,?,?)",
                     [(top + 1 + i, first + (start + i) % 1000, f"distractor-{start + i}", "(random vector)",
                       "[0,0,1,1]", "[]") for i in range(count)])
    conn.executemany("INSERT INTO embeddings VALUES (?,?,?,?)",
                     [(top + 1 + i, embedder.name, embedder.version, vectors[i].tobytes()) for i in range(count)])


def cli_identify(path: Path, photo: Path, runs: int = 4) -> dict:
    """Wall seconds and peak memory (MB) of `keyface identify` in fresh processes: the first run and the
    median of the others."""
    times, peaks = [], []
    for _ in range(runs):
        started = time.perf_counter()
        code = ("import resource, sys; from keyface.recognition.cli.main import main; code = main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)")
        done = subprocess.run([sys.executable, "-c", code, "identify", str(photo), "--gallery", str(path)],
                              capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - started)
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return {"cli_first_s": times[0], "cli_s": float(np.median(times[1:])), "cli_peak_mb": max(peaks)}


def served_identify(gallery, probes: list[Path], kind: str) -> dict:
    """p50/p99 ms of identify with the index kept (as a server keeps it), and the index's build time."""
    started = time.perf_counter()
    index = gallery.search_index(kind)
    build = time.perf_counter() - started
    times, named = [], []
    for photo in probes:
        started = time.perf_counter()
        faces = gallery.identify(photo, 1, index)
        times.append(1000 * (time.perf_counter() - started))
        named.append(faces[0].matches[0].person if faces and faces[0].matches else None)
    return {"index_build_s": build, "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "nearest": named}


def served_http(path: Path, probes: list[Path], scratch: Path) -> dict:
    """`keyface serve` on the gallery in a child process: seconds until it answers, p50/p99 ms of HTTP identify
    (one client, one request at a time) and the server's peak resident memory (MB)."""
    import httpx
    from keyface.recognition.evaluation.serve_load import ServerProcess
    started = time.perf_counter()
    server = ServerProcess(path, scratch / "token")
    up = time.perf_counter() - started
    times = []
    try:
        with httpx.Client(base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {server.token}"}) as http:
            ready, search = _search_ready(http, probes[0])
            for photo in probes:
                began = time.perf_counter()
                http.post("/api/identify", files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")}).raise_for_status()
                times.append(1000 * (time.perf_counter() - began))
        peak = _peak_mb(server.process.pid)
    finally:
        server.stop()
    return {"serve_start_s": up, "serve_search": search, "serve_ready_s": ready,
            "serve_p50_ms": float(np.percentile(times[1:], 50)),
            "serve_p99_ms": float(np.percentile(times[1:], 99)), "serve_peak_mb": peak}


def _search_ready(http, photo: Path, timeout: float = 600.0) -> tuple[float, str]:
    """After a first identify (which starts an approximate index for a very large gallery), wait until the
    server is no longer building one: (seconds waited, how it searches now)."""
    started = time.perf_counter()
    http.post("/api/identify", files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")}).raise_for_status()
    while (search := http.get("/api/health").json().get("search")) == "building":
        if time.perf_counter() - started > timeout:
            break
        time.sleep(0.2)
    return time.perf_counter() - started, search


def _peak_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def enrol_rate(gallery, photos: list[tuple[str, Path]]) -> float:
    """Photos a second enrolled into the (large) gallery."""
    started = time.perf_counter()
    for person, photo in photos:
        gallery.enrol(person, [photo], largest_face=True)
    return len(photos) / (time.perf_counter() - started)


def recall_at_1(exact: list, approximate: list) -> float:
    """Share of probes whose nearest person the approximate search agrees on."""
    return float(np.mean([a == b for a, b in zip(exact, approximate)])) if exact else float("nan")


def remove_gallery(path: Path) -> None:
    """The gallery file and everything keyface keeps beside it."""
    for suffix in ("", "-wal", "-shm", ".vectors", ".vector-people", ".vectors.lock", ".checked"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.sync()
