"""Benchmarks: Jobyard beside Celery with Redis and a raw PostgreSQL floor, in one run.

    python bench/run.py --quick      # about three to four minutes
    python bench/run.py              # the full run recorded in docs/performance.md

Needs PostgreSQL and Redis (BENCH_PG_ADMIN_URL / BENCH_REDIS_URL, default the local ones). It
creates its own database (jobyard_bench) and starts the service in its production shape: the web
server (`python -m config.serve`, one port, WEB_CONCURRENCY processes), the Celery worker and
the scheduler, with the per-key rate limit raised for the run. The processes it starts use
bench/settings.py (production plus bench/urls.py, which adds the bench-only `bench/floor` view).
It prints one table, each goal marked MET or MISSED, and writes bench/results/<timestamp>.json.
Absolute figures drift on shared machines; read the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "jobyard_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CELERY_REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/13")
# The processes the bench starts: production settings plus the bench URLconf (bench/floor).
BENCH_SETTINGS = "bench.settings"

# The goals (docs/performance.md, "How to read `make bench`").
GOAL_PER_JOB_VS_CELERY = 0.3
GOAL_BATCH_VS_CELERY = 2.0
GOAL_BATCH_VS_FLOOR_50 = 0.1
GOAL_DEPTH_RATIO = 1.5
GOAL_WAKE_P50_MS = 10.0
GOAL_STREAM_P99_MS = 100.0
GOAL_STREAM_SUBSCRIBERS = 100


def bench_db_url() -> str:
    parts = urlsplit(PG_ADMIN_URL)
    return parts._replace(path=f"/{BENCH_DB}").geturl()


# --- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def p50_p99(values: list[float]) -> dict:
    return {"p50": ms(pct(values, 50)), "p99": ms(pct(values, 99)), "n": len(values)}


class Http:
    """A lean keep-alive JSON client on http.client (the load generator shares the two cores)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def claim(self, claim_id: str | None) -> None:
        """Send X-Claim-Id with the next calls (None: stop sending it)."""
        if claim_id:
            self.headers["X-Claim-Id"] = claim_id
        else:
            self.headers.pop("X-Claim-Id", None)


def _process_tree(root: int) -> list[int]:
    """ROOT and every process below it (a multi-process web server's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- the service under test ------------------------------------------------------------------


class Service:
    """The service in its production shape: one web port served by WEB_CONCURRENCY processes."""

    def __init__(self, web_processes: int, celery_concurrency: int = 1) -> None:
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.web: subprocess.Popen | None = None
        self.peak_rss_kib = 0
        self.issued: dict[str, tuple[str, str]] = {}
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": BENCH_SETTINGS,
            "DATABASE_URL": bench_db_url(),
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench-secret-key-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_PER_SECOND": "10000000",
            "PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "OUTBOUND_ALLOW_PRIVATE": "false",
            "WEB_CONCURRENCY": str(web_processes),
        }
        self.web_processes = web_processes
        self.celery_concurrency = celery_concurrency

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def prepare(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        self.manage("migrate", "--noinput")

    def token(self, space: str = "bench") -> tuple[str, str]:
        if space in self.issued:
            return self.issued[space]
        scopes = "jobs:worker,jobs:create,jobs:kill,jobs:retry,jobs:read"
        line = (
            self.manage("issue_token", "--space", space, "--scopes", scopes, "--json")
            .strip()
            .splitlines()[-1]
        )
        data = json.loads(line)
        self.issued[space] = (data["spaceId"], data["token"])
        return self.issued[space]

    def tokens(self, spaces: list[str]) -> dict[str, tuple[str, str]]:
        """One key per space, each space new: the first alone (it creates the organization)."""
        out = {spaces[0]: self.token(spaces[0])}
        with ThreadPoolExecutor(max_workers=4) as pool:
            for space, result in zip(spaces[1:], pool.map(self.token, spaces[1:]), strict=True):
                out[space] = result
        return out

    def start(self) -> None:
        web = [PY, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(self.port)]
        web.append("config.asgi:application")
        self.web = subprocess.Popen(web, cwd=ROOT, env=self.env, **self._output("web"))
        self.procs.append(self.web)
        for cmd in (
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                f"--concurrency={self.celery_concurrency}",
                "-Q",
                "celery",
            ],
            [PY, "manage.py", "run_scheduler"],
        ):
            name = "celery" if "celery" in cmd else "scheduler"
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=self.env, **self._output(name)))
        deadline = time.monotonic() + 60
        while True:
            if self.web.poll() is not None:
                raise RuntimeError("the web server exited while starting (BENCH_LOGS=1 to see why)")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status < 500:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.2)
        # The bench URLconf must be in use (an unauthenticated call: 401, not 404).
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/bench/floor")
        status = conn.getresponse().status
        if status != 401:
            raise RuntimeError(f"bench/floor answered {status}, not 401: is bench.urls in use?")
        # Let every web process finish starting before anything is measured.
        time.sleep(2)

    def _output(self, name: str) -> dict:
        """Where a process's output goes: nowhere, or var/bench-logs/NAME.log with BENCH_LOGS=1."""
        if not os.environ.get("BENCH_LOGS"):
            return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        folder = ROOT / "var" / "bench-logs"
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / f"{name}.log", "a")  # noqa: SIM115 - lives as long as the process
        return {"stdout": log, "stderr": subprocess.STDOUT}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def rss(self) -> dict:
        """The web server's memory now: its processes, their total and largest RSS, and the
        peak of any one process so far (VmHWM, sampled at each call)."""
        pids = _process_tree(self.web.pid) if self.web else []
        serving = [pid for pid in pids if pid != self.web.pid or len(pids) == 1]
        serving = [pid for pid in serving if "resource_tracker" not in _cmdline(pid)]
        rss = [_status_kib(pid, "VmRSS") for pid in pids]
        self.peak_rss_kib = max([self.peak_rss_kib, *(_status_kib(pid, "VmHWM") for pid in pids)])
        return {
            "processes": len(pids),
            # Those that serve requests: not a supervisor above them, nor multiprocessing's
            # resource tracker.
            "serving": len(serving),
            "total_mb": round(sum(rss) / 1024, 1),
            "largest_mb": round(max(rss, default=0) / 1024, 1),
            "peak_mb": round(self.peak_rss_kib / 1024, 1),
        }

    def psql(self, sql: str, params=None) -> list[tuple]:
        import psycopg

        with psycopg.connect(bench_db_url(), autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


# --- 0. the load generator's ceiling ---------------------------------------------------------


def _trivial_server(port: int, ready) -> None:
    import asyncio as aio

    body = b'{"jobs": []}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
        except (aio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await aio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    aio.run(main())


def _ceiling_worker(port: int, seconds: float, out) -> None:
    client = Http(port, "emit_x")
    done, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        client.call("POST", "/api/v1/spaces/x/jobs/poll", {"count": 1})
        done += 1
    out.put(done)


def ceiling(workers: int, seconds: float) -> float:
    port = free_port()
    ready = mp.Event()
    server = mp.Process(target=_trivial_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    out = mp.Queue()
    procs = [mp.Process(target=_ceiling_worker, args=(port, seconds, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    server.terminate()
    return total / seconds


# --- 1. lifecycle throughput, verified exactly-once ------------------------------------------

# The lifecycle runs: (key, label, mode, jobs per poll).
LIFECYCLES = [
    ("per_job_1", "per-job, poll 1 (poll, ack, complete)", "per_job", 1),
    ("per_job_50", "per-job, poll 50 (poll 50; ack, complete each)", "per_job", 50),
    ("batch_50", "batch, poll 50 + ack, complete 50 in one call", "batch", 50),
]


def _creator(port, token, space, cap, budget, least, total, done, lat) -> None:
    """Create jobs while the budget lasts (at most CAP), then publish how many were made.

    Each create call makes about one second's worth of jobs at the rate the workers have
    reached so far (LEAST to 1000 per call: LEAST lets every worker fill its poll), and the
    creator stays at most two calls ahead of the workers, so the queue never runs dry and the
    run ends within seconds of the last create.
    """
    client = Http(port, token)
    made, start = 0, time.monotonic()
    end = start + budget
    try:
        while made < cap and time.monotonic() < end:
            rate = done.value / max(0.5, time.monotonic() - start)
            batch = min(1000, max(least, int(rate)))
            if made - done.value >= 2 * batch:
                time.sleep(0.01)
                continue
            size = min(batch, cap - made)
            body = [{"name": "noop", "payload": {"i": i}} for i in range(made, made + size)]
            t = time.perf_counter()
            status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", body)
            lat.append((size, time.perf_counter() - t))
            if status != 201:
                raise RuntimeError(f"create answered {status}")
            made += size
    finally:
        total.value = made


def _worker(port, token, space, mode, count, total, done, hard_stop, out) -> None:
    client = Http(port, token)
    lat: dict[str, list[float]] = {"poll": [], "ack": [], "complete": []}
    handed: list[str] = []
    completed: list[str] = []
    errors = 0
    last_done = None
    idle_since = None
    poll_path = f"/api/v1/spaces/{space}/jobs/poll"
    while time.monotonic() < hard_stop:
        if 0 <= total.value <= done.value:
            break
        t = time.perf_counter()
        poll = {"count": count, "ack": True} if mode == "batch" else {"count": count}
        status, body = client.call("POST", poll_path, poll)
        lat["poll"].append(time.perf_counter() - t)
        jobs = body["jobs"] if status == 200 else []
        errors += status != 200
        if not jobs:
            # Once creation is over, an empty queue for 3 s means nothing is left for us.
            if total.value >= 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 3.0:
                    break
            time.sleep(0.005)
            continue
        idle_since = None
        handed.extend(job["id"] for job in jobs)
        if mode == "batch":
            t = time.perf_counter()
            items = [{"id": j["id"], "claimId": j.get("claimId"), "result": None} for j in jobs]
            status, body = client.call("POST", "/api/v1/jobs/complete", items)
            lat["complete"].append(time.perf_counter() - t)
            ok = [r["id"] for r in body["results"] if r.get("ok")] if status == 200 else []
            errors += len(jobs) - len(ok)
            completed.extend(ok)
            with done.get_lock():
                done.value += len(ok)
            last_done = time.monotonic()
            continue
        for job in jobs:
            client.claim(job.get("claimId"))
            t = time.perf_counter()
            status, _ = client.call("POST", f"/api/v1/jobs/{job['id']}/ack")
            lat["ack"].append(time.perf_counter() - t)
            t = time.perf_counter()
            status2, _ = client.call("POST", f"/api/v1/jobs/{job['id']}/complete", {"result": None})
            lat["complete"].append(time.perf_counter() - t)
            client.claim(None)
            if status == 200 and status2 == 200:
                completed.append(job["id"])
                with done.get_lock():
                    done.value += 1
                last_done = time.monotonic()
            else:
                errors += 1
    out.put((completed, handed, lat, errors, last_done))


def verify_exactly_once(service: Service, space: str, created: int, results: list) -> dict:
    """Every created job completed, with one `completed` event each, and none handed out twice.

    From the bench database: each job's status, its `completed` events, and its hand-outs (a
    `delivered` event, or a `started` one straight from pending when the poll acks). From the
    workers: no job id completed by two calls, none handed to two polls.
    """
    row = service.psql(
        """
        SELECT count(*),
            count(*) FILTER (WHERE j.status = 'completed'),
            count(*) FILTER (WHERE c.n <> 1),
            count(*) FILTER (WHERE h.n > 1)
        FROM jobs_job j
        JOIN spaces_space s ON s.id = j.space_id
        CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM jobs_jobevent e WHERE e.job_id = j.id AND e.type = 'completed'
        ) c
        CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM jobs_jobevent e WHERE e.job_id = j.id
            AND (e.type = 'delivered' OR (e.type = 'started' AND e.previous_status = 'pending'))
        ) h
        WHERE s.public_id = %s
        """,
        (space,),
    )[0]
    in_db, completed, wrong_events, handed_twice_db = row
    done_ids = [i for r in results for i in r[0]]
    handed_ids = [i for r in results for i in r[1]]
    checks = {
        "created": created,
        "in_database": in_db,
        "completed": completed,
        "jobs_without_exactly_one_completed_event": wrong_events,
        "jobs_handed_out_more_than_once": handed_twice_db,
        "client_completed_twice": len(done_ids) - len(set(done_ids)),
        "client_handed_twice": len(handed_ids) - len(set(handed_ids)),
    }
    checks["exactly_once"] = (
        in_db == created == completed
        and wrong_events == 0
        and handed_twice_db == 0
        and checks["client_completed_twice"] == 0
        and checks["client_handed_twice"] == 0
        and len(set(done_ids)) == created
    )
    return checks


def lifecycle(
    service: Service,
    space: str,
    token: str,
    mode: str,
    count: int,
    workers: int,
    cap: int,
    budget: float,
) -> dict:
    """Workers poll, ack and complete while a producer creates jobs for up to BUDGET seconds
    (at most CAP jobs); the run ends when every created job is completed."""
    total = mp.Value("q", -1)
    done = mp.Value("q", 0)
    create_lat: list[tuple[int, float]] = []
    out = mp.Queue()
    started = time.monotonic()
    hard_stop = started + budget + 240
    procs = [
        mp.Process(
            target=_worker,
            args=(service.port, token, space, mode, count, total, done, hard_stop, out),
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    least = max(50, count * workers)
    creator = threading.Thread(
        target=_creator,
        args=(service.port, token, space, cap, budget, least, total, done, create_lat),
    )
    creator.start()
    creator.join()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    finished = [r[4] for r in results if r[4] is not None]
    elapsed = (max(finished) if finished else time.monotonic()) - started
    merged: dict[str, list[float]] = {"poll": [], "ack": [], "complete": []}
    for r in results:
        for key, values in r[2].items():
            merged[key].extend(values)
    completed = sum(len(r[0]) for r in results)
    return {
        "mode": mode,
        "poll_count": count,
        "workers": workers,
        "jobs": total.value,
        "completed": completed,
        "errors": sum(r[3] for r in results),
        "seconds": round(elapsed, 1),
        "jobs_per_second": round(completed / elapsed, 1),
        "verified": verify_exactly_once(service, space, total.value, results),
        "create_calls": len(create_lat),
        "jobs_per_create_call": round(statistics.mean(size for size, _ in create_lat or [(0, 0)])),
        "latency_ms": {
            "create": p50_p99([seconds for _, seconds in create_lat]),
            **{k: p50_p99(v) for k, v in merged.items() if v},
        },
    }


# --- 1c. workflows: a 3-level workflow of 1,000 jobs beside 1,000 plain jobs -----------------

# Roots; middle jobs, each after one root; leaves, each after one middle job (docs/workflows.md).
WORKFLOW_SHAPE = (10, 90, 900)
WORKFLOW_POLL = 10


def workflow_items(with_dependencies: bool) -> list[dict]:
    """The 1,000 jobs of one array create; WITH_DEPENDENCIES links them by position."""
    roots, middle, leaves = WORKFLOW_SHAPE
    items: list[dict] = [{"name": "wf", "payload": {"i": i}} for i in range(roots)]
    for i in range(middle):
        items.append({"name": "wf", "payload": {"i": roots + i}})
        if with_dependencies:
            items[-1]["dependsOn"] = [i % roots]
    for i in range(leaves):
        items.append({"name": "wf", "payload": {"i": roots + middle + i}})
        if with_dependencies:
            items[-1]["dependsOn"] = [roots + i % middle]
    return items


def workflow_run(
    service: Service, space: str, token: str, with_dependencies: bool, workers: int
) -> dict:
    """Create the 1,000 jobs in one call while workers poll 10, ack and complete each; the run
    ends when all are completed. With dependencies, a level is released as its parents finish."""
    items = workflow_items(with_dependencies)
    total = mp.Value("q", -1)
    done = mp.Value("q", 0)
    out = mp.Queue()
    started = time.monotonic()
    procs = [
        mp.Process(
            target=_worker,
            args=(
                service.port,
                token,
                space,
                "per_job",
                WORKFLOW_POLL,
                total,
                done,
                started + 240,
                out,
            ),
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    client = Http(service.port, token)
    t = time.perf_counter()
    status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", items)
    create_seconds = time.perf_counter() - t
    if status != 201:
        raise RuntimeError(f"create answered {status}")
    total.value = len(items)
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    finished = [r[4] for r in results if r[4] is not None]
    elapsed = (max(finished) if finished else time.monotonic()) - started
    completed = sum(len(r[0]) for r in results)
    complete_lat = [v for r in results for v in r[2]["complete"]]
    # No child started before its parent completed.
    (early,) = service.psql(
        """
        SELECT count(*) FROM jobs_jobdependency d
          JOIN jobs_job p ON p.id = d.parent_id JOIN jobs_job c ON c.id = d.child_id
          JOIN spaces_space s ON s.id = c.space_id
         WHERE s.public_id = %s AND (p.completed_at IS NULL OR c.started_at < p.completed_at)
        """,
        (space,),
    )[0]
    return {
        "jobs": len(items),
        "completed": completed,
        "errors": sum(r[3] for r in results),
        "seconds": round(elapsed, 2),
        "jobs_per_second": round(completed / elapsed, 1),
        "create_ms": round(ms(create_seconds), 1),
        "complete_ms": p50_p99(complete_lat),
        "children_started_before_parent": early,
    }


def workflows(service: Service, workers: int) -> dict:
    plain = workflow_run(service, *service.token("workflow-plain"), False, workers)
    linked = workflow_run(service, *service.token("workflow-deps"), True, workers)
    return {
        "plain": plain,
        "workflow": linked,
        "ratio": round(linked["jobs_per_second"] / plain["jobs_per_second"], 3),
    }


# --- 1d. concurrency per key: 1,000 keys with a limit of 1 each, beside the same jobs plain --

KEYED_KEYS = 1000
KEYED_PER_KEY = 2
KEYED_POLL = 10


def keyed_items(with_keys: bool) -> list[dict]:
    """KEYED_PER_KEY jobs of each of KEYED_KEYS keys, each key's jobs side by side in the queue
    (so polls keep meeting the next job of a key whose first is in flight)."""
    return [
        {"name": "keyed", **({"concurrencyKey": f"customer-{k}"} if with_keys else {})}
        for k in range(KEYED_KEYS)
        for _ in range(KEYED_PER_KEY)
    ]


def keyed_run(service: Service, space: str, token: str, with_keys: bool, workers: int) -> dict:
    """Create the jobs (arrays of 1,000), then workers poll 10, ack and complete each until all
    are completed. With keys, the name has a limit of 1 per key (space_settings --key-limit)."""
    if with_keys:
        service.manage("space_settings", "--space", space, "--key-limit", "keyed:1")
    items = keyed_items(with_keys)
    client = Http(service.port, token)
    for start in range(0, len(items), 1000):
        status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", items[start : start + 1000])
        if status != 201:
            raise RuntimeError(f"create answered {status}")
    total = mp.Value("q", len(items))
    done = mp.Value("q", 0)
    out = mp.Queue()
    started = time.monotonic()
    procs = [
        mp.Process(
            target=_worker,
            args=(
                service.port,
                token,
                space,
                "per_job",
                KEYED_POLL,
                total,
                done,
                started + 240,
                out,
            ),
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    finished = [r[4] for r in results if r[4] is not None]
    elapsed = (max(finished) if finished else time.monotonic()) - started
    completed = sum(len(r[0]) for r in results)
    polls = [v for r in results for v in r[2]["poll"]]
    return {
        "jobs": len(items),
        "keys": KEYED_KEYS if with_keys else 0,
        "completed": completed,
        "errors": sum(r[3] for r in results),
        "seconds": round(elapsed, 2),
        "jobs_per_second": round(completed / elapsed, 1),
        "poll_ms": p50_p99(polls),
        "polls": len(polls),
    }


def keyed(service: Service, workers: int) -> dict:
    plain = keyed_run(service, *service.token("keyed-plain"), False, workers)
    limited = keyed_run(service, *service.token("keyed"), True, workers)
    return {
        "plain": plain,
        "keyed": limited,
        "ratio": round(limited["jobs_per_second"] / plain["jobs_per_second"], 3),
    }


# --- 1b. per-call cost: one client, idle server -----------------------------------------------

# (key, label, goal for p50 in ms or None)
CALLS = [
    ("get_job", "GET /api/v1/jobs/{id}", 2.0),
    ("create", "create one job", 3.0),
    ("poll_1", "poll count 1 (non-empty)", None),
    ("ack", "ack", 3.0),
    ("complete", "complete", 3.0),
    ("fail", "fail (retry false)", 3.0),
    ("progress", "progress", 3.0),
    ("keepalive", "keepalive", 3.0),
    ("poll_empty", "empty poll", None),
    ("healthz", "/healthz", None),
    ("floor", "trivial authenticated DRF view (bench/floor)", None),
]


def per_call(service: Service, space: str, token: str, samples: int) -> dict:
    """Each call on its own, one client at a time, the calls interleaved round by round (so the
    machine's noise falls on all of them alike): two creates, two polls of one, two acks, then
    on the first job GET, progress, keepalive and complete, on the second fail; then an empty
    poll, /healthz and the bench floor view."""
    client = Http(service.port, token)
    lat: dict[str, list[float]] = {key: [] for key, _, _ in CALLS}
    errors: dict[str, int] = {key: 0 for key, _, _ in CALLS}
    poll_path = f"/api/v1/spaces/{space}/jobs/poll"

    def timed(op: str, method: str, path: str, body=None, claim=None, expect=200):
        client.claim(claim)
        t = time.perf_counter()
        status, data = client.call(method, path, body)
        lat[op].append(time.perf_counter() - t)
        client.claim(None)
        if status != expect:
            errors[op] += 1
        return status, data

    for _ in range(20):  # warm up: connections, lazy imports, caches
        client.call("GET", "/healthz")
        client.call("GET", "/bench/floor")
        client.call("POST", poll_path, {"count": 1})
    for _ in range(samples):
        for _ in range(2):
            timed("create", "POST", f"/api/v1/spaces/{space}/jobs", {"name": "call"}, expect=201)
        jobs = []
        for _ in range(2):
            status, data = timed("poll_1", "POST", poll_path, {"count": 1})
            if status == 200 and data["jobs"]:
                jobs.append(data["jobs"][0])
            else:
                errors["poll_1"] += 1
        for job in jobs:
            timed("ack", "POST", f"/api/v1/jobs/{job['id']}/ack", claim=job["claimId"])
        if len(jobs) == 2:
            first, second = jobs
            path, claim = f"/api/v1/jobs/{first['id']}", first["claimId"]
            timed("get_job", "GET", path)
            timed("progress", "POST", f"{path}/progress", {"percent": 50, "message": "x"}, claim)
            timed("keepalive", "POST", f"{path}/keepalive", {}, claim)
            timed("complete", "POST", f"{path}/complete", {"result": None}, claim)
            timed(
                "fail",
                "POST",
                f"/api/v1/jobs/{second['id']}/fail",
                {"error": "bench", "retry": False},
                second["claimId"],
            )
        status, data = timed("poll_empty", "POST", poll_path, {"count": 1})
        if status == 200 and data["jobs"]:
            errors["poll_empty"] += 1
        timed("healthz", "GET", "/healthz")
        timed("floor", "GET", "/bench/floor")
    return {
        "samples": samples,
        "calls": {
            key: {**p50_p99(lat[key]), "errors": errors[key], "goal_p50_ms": goal}
            for key, _, goal in CALLS
        },
    }


# --- 2. Celery with Redis --------------------------------------------------------------------

CELERY_APP = """
import redis
from celery import Celery
app = Celery("bench", broker="{broker}")
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 4
app.conf.task_ignore_result = True
counter = redis.Redis.from_url("{broker}")

@app.task(name="noop")
def noop(i):
    counter.incr("bench:done")
"""


def celery_run(n: int, workers: int, tmp: Path) -> dict:
    import redis

    r = redis.Redis.from_url(CELERY_REDIS_URL)
    r.flushdb()
    (tmp / "bench_celery_app.py").write_text(CELERY_APP.format(broker=CELERY_REDIS_URL))
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    worker = subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "bench_celery_app",
            "worker",
            "--loglevel=WARNING",
            f"--concurrency={workers}",
            "--pool=prefork",
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sys.path.insert(0, str(tmp))
        import bench_celery_app

        bench_celery_app.app.control.ping(timeout=10)
        started = time.monotonic()
        for i in range(n):
            bench_celery_app.noop.apply_async((i,))
        deadline = started + 600
        while int(r.get("bench:done") or 0) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        done = int(r.get("bench:done") or 0)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    return {
        "jobs": n,
        "completed": done,
        "workers": workers,
        "jobs_per_second": round(done / elapsed, 1),
    }


# --- 3. the PostgreSQL floor -----------------------------------------------------------------


def _floor_worker(batch: int, out) -> None:
    import psycopg

    done = 0
    with psycopg.connect(bench_db_url(), autocommit=False) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(
                    "UPDATE floor_job SET status = 'running' WHERE id IN (SELECT id FROM floor_job WHERE status = 'pending' "
                    "ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
                    (batch,),
                ).fetchall()
            if not rows:
                break
            with conn.transaction():
                conn.execute(
                    "UPDATE floor_job SET status = 'completed' WHERE id = ANY(%s)",
                    ([r[0] for r in rows],),
                )
            done += len(rows)
    out.put(done)


def floor(service: Service, n: int, workers: int, batch: int) -> dict:
    service.psql("DROP TABLE IF EXISTS floor_job")
    service.psql(
        "CREATE TABLE floor_job (id bigserial PRIMARY KEY, priority int NOT NULL DEFAULT 0, status text NOT NULL, payload jsonb)"
    )
    service.psql(
        "CREATE INDEX floor_pending ON floor_job (priority DESC, id) WHERE status = 'pending'"
    )
    service.psql(
        "INSERT INTO floor_job (status, payload) SELECT 'pending', jsonb_build_object('i', g) FROM generate_series(1, %s) g",
        (n,),
    )
    out = mp.Queue()
    started = time.monotonic()
    procs = [mp.Process(target=_floor_worker, args=(batch, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    done = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    return {
        "batch": batch,
        "jobs": n,
        "completed": done,
        "jobs_per_second": round(done / elapsed, 1),
    }


# --- 4. depth --------------------------------------------------------------------------------


def _fill(service: Service, space_id: str, n: int, status: str) -> None:
    service.psql(
        """
        INSERT INTO jobs_job (id, space_id, name, payload, status, priority, max_retries, attempt_number,
            delivery_count, timeout_seconds, available_at, callback_url, callback_headers, last_error,
            log_seq, created_at, updated_at, error_fingerprint, completed_at)
        SELECT upper(substr(md5(random()::text || g::text), 1, 26)), s.id, 'filler', '{}'::jsonb, %s, 0, 3, 1,
            0, 300, now() - interval '1 day', '', '', '', 0, now(), now(), '',
            CASE WHEN %s = 'completed' THEN now() END
        FROM generate_series(1, %s) g, spaces_space s WHERE s.public_id = %s
        """,
        (status, status, n, space_id),
    )
    service.psql("ANALYZE jobs_job")


def _poll_latency(service: Service, space: str, token: str, samples: int) -> float:
    client = Http(service.port, token)
    lat = []
    for _ in range(samples):
        t = time.perf_counter()
        status, body = client.call("POST", f"/api/v1/spaces/{space}/jobs/poll", {"count": 1})
        lat.append(time.perf_counter() - t)
        assert status == 200 and body["jobs"], (status, body)
    return statistics.median(lat)


def depth(service: Service, sizes: list[int], finished: int, samples: int) -> dict:
    out: dict[str, float] = {}
    for size in sizes:
        space, token = service.token(f"depth-{size}")
        _fill(service, space, size, "pending")
        out[f"pending_{size}"] = ms(_poll_latency(service, space, token, samples))
    space, token = service.token("depth-finished")
    _fill(service, space, finished, "completed")
    _fill(service, space, sizes[0], "pending")
    out[f"finished_{finished}"] = ms(_poll_latency(service, space, token, samples))
    values = list(out.values())
    out["ratio_largest_to_smallest"] = round(max(values) / min(values), 2)
    return out


# --- 4b. the operator's pages at depth ------------------------------------------------------

OVERVIEW_NAMES = 50


def _fill_operator(service: Service, space_id: str, n: int) -> None:
    """N jobs over OVERVIEW_NAMES names: 80% pending, 10% running (held by 20 workers), 5%
    completed, 5% dead with one of 20 errors (fingerprints set as the fail path sets them)."""
    service.psql(
        """
        INSERT INTO jobs_job (id, space_id, name, payload, status, priority, max_retries,
            attempt_number, delivery_count, timeout_seconds, available_at, callback_url,
            callback_headers, last_error, log_seq, created_at, updated_at, error_fingerprint,
            failed_at, worker_id, started_at, completed_at)
        SELECT upper(substr(md5(random()::text || g::text), 1, 26)), s.id,
            'op.name-' || (g %% %s), '{}'::jsonb, st.status, g %% 3, 3, 1, 0, 300,
            now() - (g %% 3600) * interval '1 second', '', '',
            CASE WHEN st.status = 'dead'
                 THEN 'Timeout ' || ((g / 20) %% 20) || ' after ' || g || 's' ELSE '' END,
            0, now(), now(),
            CASE WHEN st.status = 'dead' THEN substr(md5('fp' || ((g / 20) %% 20)), 1, 16)
                 ELSE '' END,
            CASE WHEN st.status = 'dead' THEN now() END,
            CASE WHEN st.status = 'running' THEN 'bench-worker-' || ((g / 20) %% 20) END,
            CASE WHEN st.status IN ('running', 'completed') THEN now() END,
            CASE WHEN st.status IN ('completed', 'dead') THEN now() END
        FROM generate_series(1, %s) g
        CROSS JOIN LATERAL (SELECT CASE WHEN g %% 20 < 16 THEN 'pending'
                                        WHEN g %% 20 < 18 THEN 'running'
                                        WHEN g %% 20 = 18 THEN 'completed'
                                        ELSE 'dead' END AS status) st,
        spaces_space s WHERE s.public_id = %s
        """,
        (OVERVIEW_NAMES, n, space_id),
    )
    # The 20 workers holding the running jobs, seen polling just now.
    service.psql(
        """
        INSERT INTO jobs_workersighting (space_id, worker_id, first_seen_at, last_seen_at)
        SELECT s.id, 'bench-worker-' || w, now(), now()
        FROM generate_series(0, 19) w, spaces_space s WHERE s.public_id = %s
        """,
        (space_id,),
    )
    # Rows inserted by SQL have no events: forget the space's rollup cursor, so the scheduler
    # seeds its counters from the jobs table again (as on a space's first roll-up).
    service.psql(
        "DELETE FROM jobs_rollupcursor WHERE space_id IN "
        "(SELECT id FROM spaces_space WHERE public_id = %s)",
        (space_id,),
    )
    service.psql("ANALYZE jobs_job")


def operator_pages(service: Service, size: int, samples: int) -> dict:
    """GET /overview, /workers and /errors p50 with SIZE jobs in one space, filled by SQL
    (generate_series). The scheduler's rollup step seeds the per-name counters from the jobs
    table once (timed here as "seed"); every read after that is what a page view costs."""
    space, token = service.token(f"operator-{size}")
    _fill_operator(service, space, size)
    # Seeding waits for the space's first event: one created job starts it.
    client = Http(service.port, token)
    status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", {"name": "op.name-0"})
    assert status == 201, status
    expected = size * 16 // 20 + 1
    began = time.monotonic()
    pending = 0
    while time.monotonic() - began < 600:
        status, body = client.call("GET", f"/api/v1/spaces/{space}/overview")
        assert status == 200, (status, body)
        pending = sum(row["pending"] for row in body["names"])
        if abs(pending - expected) <= 1:
            break
        time.sleep(0.5)
    seed = time.monotonic() - began
    out: dict[str, object] = {"jobs": size, "names": OVERVIEW_NAMES, "seed_s": round(seed, 1)}
    out["pending_seen"] = pending
    for path in ("overview", "workers", "errors"):
        lat = []
        for _ in range(samples):
            t = time.perf_counter()
            status, _ = client.call("GET", f"/api/v1/spaces/{space}/{path}")
            lat.append(time.perf_counter() - t)
            assert status == 200, (path, status)
        out[f"{path}_p50_ms"] = ms(statistics.median(lat))
        out[f"{path}_p99_ms"] = ms(pct(lat, 99))
    return out


# --- 5. wake latency -------------------------------------------------------------------------


def wake(service: Service, samples: int) -> dict:
    space, token = service.token("wake")
    producer = Http(service.port, token)
    lat = []
    for _ in range(samples):
        got = {}

        def waiter(got=got) -> None:
            client = Http(service.port, token)
            status, body = client.call(
                "POST", f"/api/v1/spaces/{space}/jobs/poll", {"count": 1, "waitSeconds": 10}
            )
            got["at"] = time.perf_counter()
            got["jobs"] = body["jobs"] if status == 200 else []

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)  # let the poll start waiting
        producer.call("POST", f"/api/v1/spaces/{space}/jobs", {"name": "wake"})
        created = time.perf_counter()
        thread.join()
        if got.get("jobs"):
            lat.append(got["at"] - created)
    return {"samples": len(lat), "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99))}


# --- 6. stream latency -----------------------------------------------------------------------


def stream(service: Service, subscribers: int, rate: int, seconds: float) -> dict:
    import websockets

    space, token = service.token("stream")
    sent: dict[str, float] = {}
    received: list[float] = []
    arrivals: list[tuple[str, float]] = []

    async def subscriber(ready: asyncio.Event, counter: list) -> None:
        url = f"ws://127.0.0.1:{service.port}/api/v1/realtime/spaces/{space}?token={token}"
        async with websockets.connect(url, max_size=2**22) as ws:
            await ws.recv()  # connected
            counter.append(1)
            if len(counter) == subscribers:
                ready.set()
            try:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=seconds + 5))
                    # The fan-out runs before the create's response is written, so a
                    # subscriber usually hears of a job before the producer knows its id:
                    # arrivals are matched to sends after the run.
                    if message.get("type") == "created":
                        arrivals.append((message.get("jobId"), time.perf_counter()))
            except (TimeoutError, websockets.ConnectionClosed):
                return

    async def producer(ready: asyncio.Event) -> None:
        await ready.wait()
        client = Http(service.port, token)
        loop = asyncio.get_running_loop()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            status, body = await loop.run_in_executor(
                None, client.call, "POST", f"/api/v1/spaces/{space}/jobs", {"name": "s"}
            )
            # The create's response comes after commit: the clock starts there, an upper bound
            # on the time since commit.
            sent[body["id"]] = t
            await asyncio.sleep(max(0, 1 / rate - (time.perf_counter() - t)))

    async def main() -> None:
        ready, counter = asyncio.Event(), []
        subs = [asyncio.create_task(subscriber(ready, counter)) for _ in range(subscribers)]
        await producer(ready)
        await asyncio.gather(*subs, return_exceptions=True)

    asyncio.run(main())
    received.extend(at - sent[job_id] for job_id, at in arrivals if job_id in sent)
    return {
        "subscribers": subscribers,
        "events_sent": len(sent),
        "deliveries": len(received),
        "expected_deliveries": len(sent) * subscribers,
        "p50_ms": ms(pct(received, 50)),
        "p99_ms": ms(pct(received, 99)),
    }


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, about 3-4 minutes")
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument(
        "--web-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="WEB_CONCURRENCY for the web server (default: the number of cpus)",
    )
    args = parser.parse_args()
    quick = args.quick
    workers = args.workers
    n_celery = 2000 if quick else 20000
    # Each lifecycle run creates jobs for at most this long (and this many), then drains.
    cap, budget = (3000, 15.0) if quick else (20000, 90.0)
    call_samples = 200 if quick else 1000
    tmp = ROOT / "bench" / "results" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    report: dict = {
        "when": datetime.now(tz=UTC).isoformat(),
        "mode": "quick" if quick else "full",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "web_concurrency": args.web_processes,
        "load_generator_processes": workers,
        "notes": (
            "per-key rate limit raised to 10,000,000/s for the run; the web server is"
            " `python -m config.serve` on one port with WEB_CONCURRENCY set; lifecycle runs create"
            f" jobs for up to {budget:.0f} s (at most {cap}) while the workers drain them"
        ),
    }
    print("load generator ceiling ...", flush=True)
    report["ceiling_requests_per_second"] = round(ceiling(workers, 3 if quick else 8), 1)
    service = Service(args.web_processes)
    print("preparing the bench database ...", flush=True)
    service.prepare()
    sizes = [1000, 10000, 100000] if quick else [1000, 100000, 1000000]
    service.tokens(
        [
            "calls",
            *(f"lifecycle-{key}" for key, *_ in LIFECYCLES),
            "wake",
            "stream",
            "workflow-plain",
            "workflow-deps",
            "keyed-plain",
            "keyed",
            *(f"depth-{size}" for size in sizes),
            "depth-finished",
        ]
    )
    service.start()
    rss: dict[str, dict] = {}
    try:
        rss["start"] = service.rss()
        print(f"per-call cost ({call_samples} rounds) ...", flush=True)
        report["per_call"] = per_call(service, *service.token("calls"), call_samples)
        for key, label, mode, count in LIFECYCLES:
            print(f"lifecycle: {label} ...", flush=True)
            space, token = service.token(f"lifecycle-{key}")
            report[key] = lifecycle(service, space, token, mode, count, workers, cap, budget)
            rss[f"after_{key}"] = service.rss()
        print("workflows: 3 levels, 1,000 jobs, beside 1,000 plain jobs ...", flush=True)
        report["workflows"] = workflows(service, workers)
        print("concurrency per key: 1,000 keys, limit 1 each, beside plain jobs ...", flush=True)
        report["keyed"] = keyed(service, workers)
        print("wake, stream, depth ...", flush=True)
        report["wake"] = wake(service, 10 if quick else 50)
        report["stream"] = stream(
            service, 20 if quick else GOAL_STREAM_SUBSCRIBERS, 50, 3 if quick else 10
        )
        report["depth_poll_p50_ms"] = depth(
            service, sizes, 100000 if quick else 1000000, 30 if quick else 100
        )
        print("operator pages at depth ...", flush=True)
        report["operator"] = operator_pages(
            service, 100000 if quick else 1000000, 20 if quick else 50
        )
        rss["end"] = service.rss()
    finally:
        service.stop()
    first, last = rss[f"after_{LIFECYCLES[0][0]}"], rss[f"after_{LIFECYCLES[-1][0]}"]
    report["web_rss"] = {
        **rss,
        "peak_mb": service.peak_rss_kib and round(service.peak_rss_kib / 1024, 1),
        # Flat: the web processes' total RSS after the last lifecycle run within 10% of
        # after the first.
        "flat": last["total_mb"] <= first["total_mb"] * 1.1,
    }
    print("Celery + Redis, PostgreSQL floor ...", flush=True)
    report["celery"] = celery_run(n_celery, workers, tmp)
    report["floor_50"] = floor(service, n_celery * (5 if not quick else 2), workers, 50)
    report["floor_1"] = floor(service, n_celery, workers, 1)
    celery = report["celery"]["jobs_per_second"]
    report["ratios"] = {
        **{
            f"{key}_vs_celery": round(report[key]["jobs_per_second"] / celery, 3)
            for key, *_ in LIFECYCLES
        },
        "batch_50_vs_floor_50": round(
            report["batch_50"]["jobs_per_second"] / report["floor_50"]["jobs_per_second"], 3
        ),
        "per_job_1_vs_floor_1": round(
            report["per_job_1"]["jobs_per_second"] / report["floor_1"]["jobs_per_second"], 3
        ),
    }
    report["seconds"] = round(time.monotonic() - began)
    rows = table(report, quick)
    report["goals"] = {row[0]: row[3] for row in rows if row[3]}
    print_table(report, rows)
    out = (
        ROOT
        / "bench"
        / "results"
        / f"{datetime.now(tz=UTC).strftime('%Y%m%dT%H%M%SZ')}-{report['mode']}.json"
    )
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def mark(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def table(r: dict, quick: bool) -> list[tuple[str, str, str, str]]:
    """(figure, result, goal, MET/MISSED or "") rows."""
    celery = r["celery"]["jobs_per_second"]
    rows: list[tuple[str, str, str, str]] = [
        (
            f"load generator ceiling (null server, {r['load_generator_processes']} processes)",
            f"{r['ceiling_requests_per_second']:,} req/s",
            "",
            "",
        ),
        (
            "web processes: WEB_CONCURRENCY / serving / in the server's process tree",
            f"{r['web_concurrency']} / {r['web_rss']['start']['serving']}"
            f" / {r['web_rss']['start']['processes']}",
            "",
            "",
        ),
    ]
    for key, label, mode, _ in LIFECYCLES:
        run = r[key]
        once = run["verified"]["exactly_once"]
        ratio = r["ratios"][f"{key}_vs_celery"]
        result = (
            f"{run['jobs_per_second']:,} jobs/s = {ratio}x Celery; "
            f"{run['completed']}/{run['jobs']} jobs; exactly once: {'yes' if once else 'no'}"
        )
        if mode == "batch":
            floor_ratio = r["ratios"]["batch_50_vs_floor_50"]
            result += f"; {floor_ratio}x floor 50"
            goal = f">= {GOAL_BATCH_VS_CELERY}x Celery, >= {GOAL_BATCH_VS_FLOOR_50}x floor 50"
            ok = ratio >= GOAL_BATCH_VS_CELERY and floor_ratio >= GOAL_BATCH_VS_FLOOR_50
        else:
            goal = f">= {GOAL_PER_JOB_VS_CELERY}x Celery"
            ok = ratio >= GOAL_PER_JOB_VS_CELERY
        rows.append((label, result, goal + ", exactly once", mark(ok and once)))
    rows += [
        ("Celery + Redis, acks late", f"{celery:,} jobs/s", "", ""),
        (
            "raw PostgreSQL floor, batch 50 / batch 1",
            f"{r['floor_50']['jobs_per_second']:,} / {r['floor_1']['jobs_per_second']:,} jobs/s",
            "",
            "",
        ),
    ]
    calls = r["per_call"]["calls"]
    for key, label, goal in CALLS:
        c = calls[key]
        result = f"{c['p50']} / {c['p99']} ms"
        if c["errors"]:
            result += f" ({c['errors']} unexpected answers)"
        rows.append(
            (
                f"per call p50 / p99: {label}",
                result,
                f"p50 <= {goal:g} ms" if goal else "",
                mark(c["p50"] <= goal and not c["errors"]) if goal else "",
            )
        )
    wf = r["workflows"]
    plain, linked = wf["plain"], wf["workflow"]
    rows.append(
        (
            "workflow of 1,000 jobs (10 > 90 > 900) vs 1,000 plain: jobs/s; create; complete p50",
            f"{linked['jobs_per_second']:,} vs {plain['jobs_per_second']:,} jobs/s"
            f" = {wf['ratio']}x; create {linked['create_ms']} vs {plain['create_ms']} ms;"
            f" complete p50 {linked['complete_ms']['p50']} vs {plain['complete_ms']['p50']} ms;"
            f" {linked['completed']}/{linked['jobs']} done,"
            f" {linked['children_started_before_parent']} child started early",
            "",
            "",
        )
    )
    kd = r["keyed"]
    plain, limited = kd["plain"], kd["keyed"]
    rows.append(
        (
            "2,000 jobs over 1,000 keys, 1 per key at once, vs the same plain: jobs/s; poll p50",
            f"{limited['jobs_per_second']:,} vs {plain['jobs_per_second']:,} jobs/s"
            f" = {kd['ratio']}x; poll p50 {limited['poll_ms']['p50']}"
            f" vs {plain['poll_ms']['p50']} ms; {limited['completed']}/{limited['jobs']} done",
            "",
            "",
        )
    )
    d = r["depth_poll_p50_ms"]
    ratio = d["ratio_largest_to_smallest"]
    figures = " / ".join(f"{v}" for k, v in d.items() if k != "ratio_largest_to_smallest")
    labels = " / ".join(
        k.replace("pending_", "").replace("finished_", "fin ")
        for k in d
        if k != "ratio_largest_to_smallest"
    )
    rows.append(
        (
            f"depth: poll p50 at {labels} (ms)",
            f"{figures}; ratio {ratio}",
            f"ratio <= {GOAL_DEPTH_RATIO} (1k to 1M)" + (", quick: to 100k only" if quick else ""),
            mark(ratio <= GOAL_DEPTH_RATIO),
        )
    )
    w = r["wake"]
    rows.append(
        (
            "wake latency p50 / p99",
            f"{w['p50_ms']} / {w['p99_ms']} ms ({w['samples']} samples)",
            f"p50 < {GOAL_WAKE_P50_MS:g} ms",
            mark(w["p50_ms"] < GOAL_WAKE_P50_MS),
        )
    )
    s = r["stream"]
    all_delivered = s["deliveries"] == s["expected_deliveries"]
    rows.append(
        (
            f"stream latency p50 / p99, {s['subscribers']} subscribers",
            f"{s['p50_ms']} / {s['p99_ms']} ms ({s['deliveries']}/{s['expected_deliveries']} delivered)",
            f"p99 < {GOAL_STREAM_P99_MS:g} ms, all delivered, {GOAL_STREAM_SUBSCRIBERS} subscribers"
            + (
                f" (quick: only {s['subscribers']})"
                if s["subscribers"] < GOAL_STREAM_SUBSCRIBERS
                else ""
            ),
            mark(s["p99_ms"] < GOAL_STREAM_P99_MS and all_delivered),
        )
    )
    m = r["web_rss"]
    first, last = m[f"after_{LIFECYCLES[0][0]}"], m[f"after_{LIFECYCLES[-1][0]}"]
    rows.append(
        (
            "web RSS: peak of one process; tree total after first / last lifecycle",
            f"{m['peak_mb']} MiB; {first['total_mb']} / {last['total_mb']} MiB"
            f" (flat: {'yes' if m['flat'] else 'no'})",
            "",
            "",
        )
    )
    for key, *_ in LIFECYCLES:
        lat = r[key]["latency_ms"]
        rows.append(
            (
                f"{key} calls p50 / p99 under load (ms)",
                "; ".join(
                    f"{op} {v['p50']} / {v['p99']}"
                    if op != "create"
                    else f"create ({r[key]['jobs_per_create_call']} jobs) {v['p50']} / {v['p99']}"
                    for op, v in lat.items()
                ),
                "",
                "",
            )
        )
    o = r.get("operator")
    if o:
        rows.append(
            (
                f"operator reads p50 / p99 at {o['jobs']:,} jobs, {o['names']} names (ms)",
                f"overview {o['overview_p50_ms']} / {o['overview_p99_ms']}; workers "
                f"{o['workers_p50_ms']} / {o['workers_p99_ms']}; errors {o['errors_p50_ms']}"
                f" / {o['errors_p99_ms']}; first rollup (seed) {o['seed_s']} s",
                "",
                "",
            )
        )
    return rows


def print_table(r: dict, rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(
        f"\nJobyard benchmark ({r['mode']}, {r['machine']['cpus']} cpus, {r['when']}, "
        f"{r['seconds']} s)"
    )
    print(f"  {'figure'.ljust(widths[0])}  {'result'.ljust(widths[1])}  {'goal'.ljust(widths[2])}")
    for figure, result, goal, status in rows:
        print(
            f"  {figure.ljust(widths[0])}  {result.ljust(widths[1])}  {goal.ljust(widths[2])}  {status}"
        )
    met = sum(1 for row in rows if row[3] == "MET")
    missed = sum(1 for row in rows if row[3] == "MISSED")
    print(f"\n  goals: {met} met, {missed} missed")


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
