"""`keyface bench serve`: a bounded load test of a real server process on loopback, and a kill test.

Clients are threads with their own HTTP connection; each takes the next job from one shared list
(identify requests with an enrolment every `enrol_every`), so the mix and the count are fixed.
Afterwards the gallery is checked (its structure and vectors), and every enrolment the server
acknowledged must be in it, also after the server process was killed with SIGKILL mid-load (a
process killed between any two instructions; a power cut, which also loses the OS's unwritten
pages, is not tested here: the gallery's synchronous=FULL commits are what cover it), and, for a
PostgreSQL gallery, after the database server was stopped and started again mid-load.
"""
from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keyface.data.errors import KeyfaceError

logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the report
logging.getLogger("httpcore").setLevel(logging.WARNING)

LOAD_PROTOCOL = ("a keyface serve process on loopback; {clients} client threads, each with its own connection, take "
                 "jobs from one list: {identify} identify requests of one-face LFW photos (single-photo DevTest "
                 "people), with one enrolment (a DevTest person's photos) after every {every} of them; latency is "
                 "per request, from send to the whole answer")


@dataclass
class Jobs:
    """The fixed work of a run: photos to identify and people to enrol, taken in order by the clients."""
    probes: list[tuple[str, bytes]]
    people: list[tuple[str, list[tuple[str, bytes]]]]
    enrol_every: int
    items: list = field(init=False)

    def __post_init__(self):
        self.items, people = [], iter(self.people)
        for i, probe in enumerate(self.probes):
            self.items.append(("identify", probe))
            if (i + 1) % self.enrol_every == 0:
                person = next(people, None)
                if person is not None:
                    self.items.append(("enrol", person))
        self.items += [("enrol", person) for person in people]  # those the identify requests left over
        self._lock, self._next = threading.Lock(), 0

    def take(self):
        """The next job, or None when all are taken."""
        with self._lock:
            if self._next >= len(self.items):
                return None
            self._next += 1
            return self.items[self._next - 1]


class ServerProcess:
    """`keyface serve` in a child process on a free loopback port, with its own token file."""

    def __init__(self, gallery: Path | str, token_file: Path, embedder: str | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "keyface", "serve", "--port", str(self.port), "--gallery", str(gallery),
                   "--token-file", str(token_file)] + (["--embedder", embedder] if embedder else [])
        self.log = token_file.with_name("serve.log")  # a file, not a pipe nobody reads while it fills
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        self.token = self._wait_until_up(token_file)

    def _wait_until_up(self, token_file: Path, timeout: float = 180.0) -> str:
        """Wait for /api/health to answer; the token the server made."""
        import httpx
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise KeyfaceError(f"keyface serve exited: {self.log.read_text().strip()[-300:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return token_file.read_text().strip()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise KeyfaceError(f"keyface serve did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the process ends between two instructions; none of its shutdown code runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """A normal stop (SIGINT, as Ctrl-C)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def run_load(url: str, token: str, jobs: Jobs, clients: int, kill_at: int | None = None, kill=None) -> dict:
    """Drive the server with `clients` threads until the jobs run out; with kill_at, call kill() once
    that many answers have come back (the other requests are then in flight)."""
    results, lock, killed, fault_over = [], threading.Lock(), [], []
    started = time.perf_counter()

    def client() -> None:
        import httpx
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            while (job := jobs.take()) is not None:
                result = _send(http, *job)
                with lock:
                    results.append(result)
                    due = kill_at is not None and not killed and len(results) >= kill_at
                    if due:
                        killed.append(len(results))
                if due:
                    kill()
                    fault_over.append(time.perf_counter())
                time.sleep(result["retry_after"])  # as a client should: wait as long as a 503 asks (1 s at most)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = summarise(results, time.perf_counter() - started)
    if kill_at is not None and not killed:
        raise KeyfaceError(f"the server was never killed: only {len(results)} answers came, {kill_at} were awaited")
    after = [r for r in results if fault_over and r["sent"] >= fault_over[0]]  # sent once the fault was over
    return {**summary, "killed_after": killed[0] if killed else None,
            "ok_after_fault": f"{sum(r['ok'] for r in after)}/{len(after)}" if killed else None}


def _send(http, kind: str, payload) -> dict:
    """One request and what came of it: kind, seconds, ok, and for enrolments the acknowledged count."""
    t0 = time.perf_counter()
    try:
        if kind == "identify":
            name, data = payload
            response = http.post("/api/identify", files={"photo": (name, data, "image/jpeg")})
        else:
            person, photos = payload
            response = http.post("/api/people", data={"name": person},
                                 files=[("photos", (n, d, "image/jpeg")) for n, d in photos])
        ok = response.status_code in (200, 201)
        wait = min(float(response.headers.get("retry-after", 0) or 0), 1.0) if response.status_code == 503 else 0.0
        acked = response.json().get("added") if ok and kind == "enrol" else None
        error = None if ok else f"{response.status_code} {response.text[:120]}"
    except Exception as exc:  # a refused or broken connection counts as an error, not a crash
        ok, acked, error, wait = False, None, f"{exc.__class__.__name__}: {exc}", 0.0
    return {"kind": kind, "sent": t0, "seconds": time.perf_counter() - t0, "ok": ok, "error": error,
            "person": payload[0] if kind == "enrol" else None, "added": acked, "retry_after": wait}


def summarise(results: list[dict], seconds: float) -> dict:
    """Requests per second, latency percentiles (identify; enrolments apart) and errors, and the enrolments
    the server acknowledged."""
    identify = [r for r in results if r["kind"] == "identify" and r["ok"]]
    latencies = np.array([r["seconds"] for r in identify]) * 1000
    enrol = np.array([r["seconds"] for r in results if r["kind"] == "enrol" and r["ok"]]) * 1000
    return {"requests": len(results), "identify_ok": len(identify), "seconds": seconds,
            "identify_per_s": len(identify) / seconds if seconds else 0.0,
            "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
            "enrol_p50_ms": float(np.percentile(enrol, 50)) if len(enrol) else None,
            "errors": sum(not r["ok"] for r in results), "first_error": next((r["error"] for r in results if r["error"]), None),
            "acknowledged": {r["person"]: r["added"] for r in results if r["kind"] == "enrol" and r["ok"]}}


def lost_enrolments(gallery, acknowledged: dict[str, int]) -> list[str]:
    """People whose acknowledged photos are not all in the gallery (a file or a database; only read)."""
    from keyface.recognition.facade import Gallery
    with Gallery(gallery, create=False) as opened:
        counts = opened.people()
    return [person for person, added in acknowledged.items() if counts.get(person, 0) < added]


def restart_database(postgres, down_s: float = 3.0) -> None:
    """Stop the database server, keep it down `down_s` seconds, start it again (an outage mid-load)."""
    postgres.stop()
    try:
        time.sleep(down_s)
    finally:
        postgres.start()


def seen_across(writer: "ServerProcess", reader: "ServerProcess", person: tuple[str, list], probe: tuple[str, bytes],
                timeout: float = 10.0) -> float:
    """Seconds from an enrolment acknowledged by one server until another server on the same gallery names the
    person in a probe photo (polled every 20 ms)."""
    import httpx
    name, photos = person
    answer = httpx.post(writer.url + "/api/people", data={"name": name}, timeout=60,
                        headers={"Authorization": f"Bearer {writer.token}"},
                        files=[("photos", (n, d, "image/jpeg")) for n, d in photos])
    if answer.status_code != 201 or not answer.json()["added"]:
        raise KeyfaceError(f"the enrolment was refused: {answer.text[:200]}")
    acknowledged = time.perf_counter()
    while time.perf_counter() - acknowledged < timeout:
        found = httpx.post(reader.url + "/api/identify", files={"photo": (probe[0], probe[1], "image/jpeg")}, timeout=60)
        if any(face["name"] == name for face in found.json().get("faces", [])):
            return time.perf_counter() - acknowledged
        time.sleep(0.02)
    return float("inf")


def _free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_bytes(paths: list[Path]) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each photo: what a client uploads."""
    return [(p.name, p.read_bytes()) for p in paths]

