"""Benchmarks: Jobyard beside Celery with Redis and a raw PostgreSQL floor, in one run.

    python bench/run.py --quick      # under about two minutes
    python bench/run.py              # the full run recorded in the README

Needs PostgreSQL and Redis (DATABASE_URL / REDIS_URL, default the local ones). It creates its
own database (jobyard_bench), starts the service in its production shape (daphne, the Celery
worker, the scheduler) with the per-key rate limit raised for the run, prints a table and writes
bench/results/<timestamp>.json. Absolute figures drift on shared machines; read the ratios.
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
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "jobyard_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CELERY_REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/13")


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


# --- the service under test ------------------------------------------------------------------


class Service:
    def __init__(self, web_processes: int = 2, celery_concurrency: int = 1) -> None:
        # daphne is one process (one thread runs the sync views): the service runs one per
        # core, each on its own port, and the workers spread over them (no load balancer).
        self.ports = [free_port() for _ in range(web_processes)]
        self.port = self.ports[0]
        self.procs: list[subprocess.Popen] = []
        self.web_pids: list[int] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DATABASE_URL": bench_db_url(),
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": "bench-secret-key-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_PER_SECOND": "10000000",
            "PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "OUTBOUND_ALLOW_PRIVATE": "false",
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
        scopes = "jobs:worker,jobs:create,jobs:kill,jobs:retry,jobs:read"
        line = (
            self.manage("issue_token", "--space", space, "--scopes", scopes, "--json")
            .strip()
            .splitlines()[-1]
        )
        data = json.loads(line)
        return data["spaceId"], data["token"]

    def start(self) -> None:
        for port in self.ports:
            web = [
                PY,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "config.asgi:application",
            ]
            proc = subprocess.Popen(web, cwd=ROOT, env=self.env, **self._output(f"web-{port}"))
            self.procs.append(proc)
            self.web_pids.append(proc.pid)
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
        deadline = time.monotonic() + 30
        waiting = list(self.ports)
        while waiting and time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", waiting[0], timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status < 500:
                    waiting.pop(0)
            except OSError:
                time.sleep(0.2)
        if waiting:
            raise RuntimeError("a web process did not start")

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
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in self.web_pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        return round(peak / 1024, 1)

    def psql(self, sql: str, params=None) -> None:
        import psycopg

        with psycopg.connect(bench_db_url(), autocommit=True) as conn:
            conn.execute(sql, params)


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


# --- 1. lifecycle throughput -----------------------------------------------------------------


def _create_all(port: int, token: str, space: str, n: int, lat: list) -> None:
    client = Http(port, token)
    batch = 1000
    for start in range(0, n, batch):
        body = [{"name": "noop", "payload": {"i": i}} for i in range(start, min(n, start + batch))]
        t = time.perf_counter()
        status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", body)
        lat.append(time.perf_counter() - t)
        assert status == 201, status


def _worker(port: int, token: str, space: str, mode: str, stop_at: float, out) -> None:
    client = Http(port, token)
    lat: dict[str, list[float]] = {"poll": [], "ack": [], "complete": []}
    done = 0
    idle_since = None
    while time.monotonic() < stop_at:
        t = time.perf_counter()
        if mode == "batch":
            status, body = client.call(
                "POST", f"/api/v1/spaces/{space}/jobs/poll", {"count": 50, "ack": True}
            )
        else:
            status, body = client.call("POST", f"/api/v1/spaces/{space}/jobs/poll", {"count": 1})
        lat["poll"].append(time.perf_counter() - t)
        jobs = body["jobs"] if status == 200 else []
        if not jobs:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 2.0:
                break
            time.sleep(0.01)
            continue
        idle_since = None
        if mode == "batch":
            t = time.perf_counter()
            items = [{"id": j["id"], "claimId": j.get("claimId"), "result": None} for j in jobs]
            status, body = client.call("POST", "/api/v1/jobs/complete", items)
            lat["complete"].append(time.perf_counter() - t)
            done += sum(1 for r in body["results"] if r.get("ok"))
            continue
        job = jobs[0]
        client.headers["X-Claim-Id"] = job.get("claimId") or ""
        t = time.perf_counter()
        client.call("POST", f"/api/v1/jobs/{job['id']}/ack")
        lat["ack"].append(time.perf_counter() - t)
        t = time.perf_counter()
        status, _ = client.call("POST", f"/api/v1/jobs/{job['id']}/complete", {"result": None})
        lat["complete"].append(time.perf_counter() - t)
        client.headers.pop("X-Claim-Id", None)
        if status == 200:
            done += 1
    out.put((done, lat))


def lifecycle(service: Service, n: int, workers: int, mode: str) -> dict:
    space, token = service.token(f"lifecycle-{mode}")
    create_lat: list[float] = []
    started = time.monotonic()
    creator = threading.Thread(target=_create_all, args=(service.port, token, space, n, create_lat))
    creator.start()
    out = mp.Queue()
    stop_at = started + 600
    procs = [
        mp.Process(
            target=_worker,
            args=(service.ports[i % len(service.ports)], token, space, mode, stop_at, out),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    creator.join()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    # Workers stop after 2 s idle: take that off the wall time.
    elapsed = time.monotonic() - started - 2.0
    merged: dict[str, list[float]] = {"poll": [], "ack": [], "complete": []}
    for _, lat in results:
        for key, values in lat.items():
            merged[key].extend(values)
    return {
        "mode": mode,
        "jobs": n,
        "completed": done,
        "workers": workers,
        "jobs_per_second": round(done / elapsed, 1),
        "latency_ms": {
            "create_1000": {"p50": ms(pct(create_lat, 50)), "p99": ms(pct(create_lat, 99))},
            **{k: {"p50": ms(pct(v, 50)), "p99": ms(pct(v, 99))} for k, v in merged.items() if v},
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
            log_seq, created_at, updated_at, completed_at)
        SELECT upper(substr(md5(random()::text || g::text), 1, 26)), s.id, 'filler', '{}'::jsonb, %s, 0, 3, 1,
            0, 300, now() - interval '1 day', '', '', '', 0, now(), now(),
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
    parser.add_argument("--quick", action="store_true", help="small sizes, under about two minutes")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    quick = args.quick
    n = 2000 if quick else 20000
    workers = args.workers
    tmp = ROOT / "bench" / "results" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)

    report: dict = {
        "when": datetime.now(tz=UTC).isoformat(),
        "mode": "quick" if quick else "full",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "notes": (
            "per-key rate limit raised to 10,000,000/s for the run; two web processes (daphne,"
            " one per core) on two ports, the lifecycle workers spread over them"
        ),
    }
    report["ceiling_requests_per_second"] = round(ceiling(workers, 3 if quick else 8), 1)
    service = Service()
    service.prepare()
    service.start()
    try:
        report["per_job"] = lifecycle(service, n, workers, "per_job")
        report["batch"] = lifecycle(service, n, workers, "batch")
        report["web_peak_rss_mb"] = service.peak_rss_mb()
        report["wake"] = wake(service, 10 if quick else 50)
        report["stream"] = stream(service, 20 if quick else 100, 50, 3 if quick else 10)
        sizes = [1000, 10000, 100000] if quick else [1000, 100000, 1000000]
        report["depth_poll_p50_ms"] = depth(
            service, sizes, 100000 if quick else 1000000, 30 if quick else 100
        )
    finally:
        service.stop()
    report["celery"] = celery_run(n, workers, tmp)
    report["floor_50"] = floor(service, n * (5 if not quick else 2), workers, 50)
    report["floor_1"] = floor(service, n, workers, 1)
    report["ratios"] = {
        "batch_vs_celery": round(
            report["batch"]["jobs_per_second"] / report["celery"]["jobs_per_second"], 2
        ),
        "per_job_vs_celery": round(
            report["per_job"]["jobs_per_second"] / report["celery"]["jobs_per_second"], 2
        ),
        "batch_vs_floor_50": round(
            report["batch"]["jobs_per_second"] / report["floor_50"]["jobs_per_second"], 3
        ),
        "per_job_vs_floor_1": round(
            report["per_job"]["jobs_per_second"] / report["floor_1"]["jobs_per_second"], 3
        ),
    }
    print_table(report)
    out = (
        ROOT
        / "bench"
        / "results"
        / f"{datetime.now(tz=UTC).strftime('%Y%m%dT%H%M%SZ')}-{report['mode']}.json"
    )
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def print_table(r: dict) -> None:
    rows = [
        ("load generator ceiling (trivial server)", f"{r['ceiling_requests_per_second']} req/s"),
        ("per-job mode (poll, ack, complete)", f"{r['per_job']['jobs_per_second']} jobs/s"),
        ("batch mode (poll 50 + ack, batch complete)", f"{r['batch']['jobs_per_second']} jobs/s"),
        ("Celery + Redis, acks late", f"{r['celery']['jobs_per_second']} jobs/s"),
        ("raw PostgreSQL floor, batch 50", f"{r['floor_50']['jobs_per_second']} jobs/s"),
        ("raw PostgreSQL floor, batch 1", f"{r['floor_1']['jobs_per_second']} jobs/s"),
        ("batch / Celery", r["ratios"]["batch_vs_celery"]),
        ("per-job / Celery", r["ratios"]["per_job_vs_celery"]),
        ("batch / floor 50", r["ratios"]["batch_vs_floor_50"]),
        ("per-job / floor 1", r["ratios"]["per_job_vs_floor_1"]),
        ("depth: poll p50 by table size (ms)", json.dumps(r["depth_poll_p50_ms"])),
        ("wake latency p50 / p99 (ms)", f"{r['wake']['p50_ms']} / {r['wake']['p99_ms']}"),
        (
            f"stream latency p50 / p99, {r['stream']['subscribers']} subscribers (ms)",
            f"{r['stream']['p50_ms']} / {r['stream']['p99_ms']} ({r['stream']['deliveries']}/{r['stream']['expected_deliveries']} delivered)",
        ),
        ("web process peak RSS", f"{r['web_peak_rss_mb']} MiB"),
    ]
    for key in ("per_job", "batch"):
        for op, v in r[key]["latency_ms"].items():
            rows.append((f"{key} {op} p50 / p99 (ms)", f"{v['p50']} / {v['p99']}"))
    width = max(len(k) for k, _ in rows)
    print(f"\nJobyard benchmark ({r['mode']}, {r['machine']['cpus']} cpus, {r['when']})")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
