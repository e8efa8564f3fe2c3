"""Fault script: the service in its production shape under load, while things break.

    python bench/chaos.py --quick     # a few minutes
    python bench/chaos.py             # the figures in the README's Reliability section

Targets 127.0.0.1 only and stops by itself. Scenarios 3 and 4 restart the machine's own
PostgreSQL and Redis (with the commands the machine documents): run it on a development or CI
machine, never beside anything that matters. For every scenario it prints jobs created,
completed, dead, lost (must be 0), duplicate concurrent holders (must be 0), and the API's
success rate and p99 during the fault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, Http, Service, bench_db_url, free_port, ms, pct  # noqa: E402

TIMEOUT = 2  # timeoutSeconds of chaos jobs: redelivery comes quickly


# --- worker processes ------------------------------------------------------------------------


def worker_main(port: int, token: str, space: str, tag: str, mode: str) -> None:
    """A worker in its own process: poll, ack, work a little, complete (claim id on each call)."""
    client = Http(port, token)
    while True:
        try:
            status, body = client.call(
                "POST", f"/api/v1/spaces/{space}/jobs/poll", {"count": 1, "waitSeconds": 1}
            )
        except OSError:
            time.sleep(0.2)
            continue
        if status != 200 or not body["jobs"]:
            if status >= 500:
                time.sleep(0.2)
            continue
        job = body["jobs"][0]
        client.headers["X-Claim-Id"] = job["claimId"]
        try:
            client.call("POST", f"/api/v1/jobs/{job['id']}/ack")
            if mode == "slow":
                print(f"acked {job['id']}", flush=True)
                time.sleep(0.5)
            else:
                time.sleep(random.uniform(0, 0.02))
            status, body = client.call(
                "POST", f"/api/v1/jobs/{job['id']}/complete", {"result": {"by": tag}}
            )
            if mode == "slow":
                print(f"complete {job['id']} {status} {(body or {}).get('code', '')}", flush=True)
                return
        except OSError:
            pass
        finally:
            client.headers.pop("X-Claim-Id", None)


class Pool:
    def __init__(
        self, service: Service, space: str, token: str, size: int, port: int | None = None
    ) -> None:
        self.args = [str(port or service.port), token, space]
        self.procs: list[subprocess.Popen] = []
        for i in range(size):
            self.procs.append(self._spawn(f"w{i}"))

    def _spawn(self, tag: str, mode: str = "normal") -> subprocess.Popen:
        return subprocess.Popen(
            [PY, __file__, "worker", *self.args, tag, mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def kill_one(self) -> None:
        index = random.randrange(len(self.procs))
        self.procs[index].kill()
        self.procs[index].wait()
        self.procs[index] = self._spawn(f"w{index}-{time.monotonic_ns()}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


class Probe:
    """Creates jobs at a steady rate and records every API answer: success rate and p99."""

    def __init__(
        self, service: Service, space: str, token: str, rate: float = 20, port: int | None = None
    ) -> None:
        self.client = Http(port or service.port, token)
        self.space, self.rate = space, rate
        self.samples: list[tuple[float, int, float]] = []  # (when, status, seconds)
        self.created: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                status, body = self.client.call(
                    "POST",
                    f"/api/v1/spaces/{self.space}/jobs",
                    {"name": "probe", "timeoutSeconds": TIMEOUT, "maxRetries": 10},
                )
                if status == 201:
                    self.created.append(body["id"])
            except OSError:
                status = 0
            self.samples.append((time.monotonic(), status, time.perf_counter() - t))
            self._stop.wait(max(0, 1 / self.rate - (time.perf_counter() - t)))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

    def window(self, start: float, end: float) -> dict:
        inside = [s for s in self.samples if start <= s[0] <= end]
        ok = [s for s in inside if 200 <= s[1] < 300]
        return {
            "requests": len(inside),
            "success_rate": round(len(ok) / len(inside), 3) if inside else None,
            "p99_ms": ms(pct([s[2] for s in inside], 99)) if inside else None,
            "statuses": dict(sorted(_count(s[1] for s in inside).items())),
        }


def _count(values) -> dict:
    out: dict = defaultdict(int)
    for v in values:
        out[v] += 1
    return out


# --- checks from the database ----------------------------------------------------------------


def db_rows(sql: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(bench_db_url()) as conn:
        return conn.execute(sql, params).fetchall()


def settle(space: str, timeout: float, stall: float = 60) -> None:
    """Wait until no job of SPACE is still active, or until the active count has not moved for
    STALL seconds (what is left then is stuck, and counts as lost), or TIMEOUT passes."""
    end = time.monotonic() + timeout
    last, moved = None, time.monotonic()
    while time.monotonic() < end:
        (active,) = db_rows(
            "SELECT count(*) FROM jobs_job j JOIN spaces_space s ON s.id = j.space_id "
            "WHERE s.public_id = %s AND j.status IN ('pending', 'scheduled', 'delivered', 'running')",
            (space,),
        )[0]
        if active == 0:
            return
        if active != last:
            last, moved = active, time.monotonic()
        elif time.monotonic() - moved > stall:
            return
        time.sleep(0.5)


def outcome(space: str) -> dict:
    rows = dict(
        db_rows(
            "SELECT j.status, count(*) FROM jobs_job j JOIN spaces_space s ON s.id = j.space_id WHERE s.public_id = %s GROUP BY 1",
            (space,),
        )
    )
    created = sum(rows.values())
    completed, dead = rows.get("completed", 0), rows.get("dead", 0)
    events = db_rows(
        "SELECT e.job_id, e.type, e.data, e.created_at, j.timeout_seconds FROM jobs_jobevent e "
        "JOIN jobs_job j ON j.id = e.job_id JOIN spaces_space s ON s.id = e.space_id "
        "WHERE s.public_id = %s ORDER BY e.job_id, e.id",
        (space,),
    )
    # A job is held from `delivered` until it is released (pending again, retried, finished).
    # A second `delivered` while held would be two concurrent holders.
    duplicates, lateness = 0, []
    held_since: dict[str, datetime] = {}
    for job_id, type_, data, at, timeout in events:
        if type_ == "delivered":
            if job_id in held_since:
                duplicates += 1
            held_since[job_id] = at
        elif type_ in ("pending", "retried", "completed", "dead", "killed"):
            start = held_since.pop(job_id, None)
            timed_out = (
                type_ == "pending" and (data or {}).get("reason") == "delivery_timeout"
            ) or (type_ in ("retried", "dead") and (data or {}).get("error") == "timeout")
            if start is not None and timed_out:
                lateness.append((at - start).total_seconds() - timeout)
        elif type_ == "started" and job_id in held_since:
            held_since[job_id] = at  # the execution deadline runs from the ack
    return {
        "created": created,
        "completed": completed,
        "dead": dead,
        "lost": created - completed - dead,
        "duplicate_concurrent_holders": duplicates,
        "timeouts_redelivered": len(lateness),
        "max_redelivery_past_timeout_s": round(max(lateness), 2) if lateness else None,
    }


def create_bulk(service: Service, space: str, token: str, n: int) -> None:
    client = Http(service.port, token)
    for start in range(0, n, 1000):
        body = [
            {"name": "chaos", "timeoutSeconds": TIMEOUT, "maxRetries": 10}
            for _ in range(min(1000, n - start))
        ]
        status, _ = client.call("POST", f"/api/v1/spaces/{space}/jobs", body)
        assert status == 201, status


# --- scenarios -------------------------------------------------------------------------------


def scenario_sigkill(service: Service, jobs: int, kills: int) -> dict:
    space, token = service.token("chaos-sigkill")
    create_bulk(service, space, token, jobs)
    pool = Pool(service, space, token, 4)
    probe = Probe(service, space, token, rate=5)  # steady creates beside the bulk load
    start = time.monotonic()
    done_kills = 0
    # Kills spread over the whole run: one each time about jobs/kills more jobs have finished,
    # at a random moment of a worker's cycle (mid-poll, after ack, mid-complete).
    step = jobs / kills
    threshold = random.uniform(0.5, 1.5) * step
    while done_kills < kills and time.monotonic() - start < 1500:
        (finished,) = db_rows(
            "SELECT count(*) FROM jobs_job j JOIN spaces_space s ON s.id = j.space_id "
            "WHERE s.public_id = %s AND j.status IN ('completed', 'dead')",
            (space,),
        )[0]
        if finished >= jobs:
            break
        if finished >= threshold:
            time.sleep(random.uniform(0, 0.05))
            pool.kill_one()
            done_kills += 1
            threshold += random.uniform(0.5, 1.5) * step
        else:
            time.sleep(0.05)
    end = time.monotonic()
    probe.stop()
    settle(space, 1800)
    pool.stop()
    return {"kills": done_kills, **outcome(space), "api": probe.window(start, end)}


def scenario_sigstop(service: Service, rounds: int) -> dict:
    space, token = service.token("chaos-sigstop")
    pool = Pool(service, space, token, 2)
    refused, accepted_late = 0, 0
    start = time.monotonic()
    for _ in range(rounds):
        client = Http(service.port, token)
        client.call(
            "POST",
            f"/api/v1/spaces/{space}/jobs",
            {"name": "stopped", "timeoutSeconds": TIMEOUT, "maxRetries": 5},
        )
        # A dedicated slow worker takes the next job; stop it right after its ack.
        pool.stop()
        slow = subprocess.Popen(
            [PY, __file__, "worker", str(service.port), token, space, "stale", "slow"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = slow.stdout.readline().split()
        if not line or line[0] != "acked":
            slow.kill()
            continue
        os.kill(slow.pid, signal.SIGSTOP)
        pool = Pool(service, space, token, 2)  # others take over once the lease runs out
        settle(space, 30)
        os.kill(slow.pid, signal.SIGCONT)
        result = slow.stdout.readline().split()
        slow.wait(timeout=30)
        if len(result) >= 3 and result[2] == "409":
            refused += 1
        else:
            accepted_late += 1
    end = time.monotonic()
    pool.stop()
    finals = db_rows(
        "SELECT j.result FROM jobs_job j JOIN spaces_space s ON s.id = j.space_id WHERE s.public_id = %s AND j.name = 'stopped'",
        (space,),
    )
    stale_results = sum(1 for (r,) in finals if (r or {}).get("by") == "stale")
    return {
        "rounds": rounds,
        "late_calls_refused_409": refused,
        "late_calls_accepted": accepted_late,
        "jobs_with_stale_result": stale_results,
        **outcome(space),
        "seconds": round(end - start, 1),
    }


def _pg(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            action,
            *(["-m", "immediate"] if action == "stop" else []),
        ],
        check=True,
    )


def scenario_postgres_restart(service: Service, down_seconds: float) -> dict:
    space, token = service.token("chaos-postgres")
    pool = Pool(service, space, token, 2)
    probe = Probe(service, space, token)
    time.sleep(2)
    start = time.monotonic()
    _pg("stop")
    time.sleep(down_seconds)
    _pg("start")
    up = time.monotonic()
    recovered_at = None
    while time.monotonic() - up < 60:
        recent = [s for s in probe.samples if s[0] > up and 200 <= s[1] < 300]
        if recent:
            recovered_at = recent[0][0]
            break
        time.sleep(0.1)
    time.sleep(2)
    probe.stop()
    settle(space, 120)
    pool.stop()
    return {
        "down_seconds": down_seconds,
        "api_while_down": probe.window(start, up),
        "recovered_seconds_after_start": round(recovered_at - up, 2) if recovered_at else None,
        **outcome(space),
    }


def _redis(action: str) -> None:
    if action == "stop":
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
            check=False,
            capture_output=True,
        )
    else:
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ],
            check=True,
        )
        for _ in range(50):
            if subprocess.run(["redis-cli", "ping"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)


class Receiver:
    """A local HTTP receiver counting what it gets (Slack-style and push notifications)."""

    def __init__(self, behaviour: str = "ok") -> None:
        self.count = 0
        self.bodies: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if behaviour == "hang":
                    time.sleep(60)
                    return
                if behaviour == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(1)
                    return
                if behaviour == "huge":
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(200):
                        self.wfile.write(b"x" * 1_000_000)
                    return
                receiver.count += 1
                with contextlib.suppress(ValueError):
                    receiver.bodies.append(json.loads(raw or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


def _set_slack(service: Service, space: str, url: str) -> None:
    service.manage(
        "space_settings", "--space", space, "--slack-url", url, "--slack-events", "completed"
    )


def scenario_redis_outage(service: Service, down_seconds: float) -> dict:
    space, token = service.token("chaos-redis")
    slack = Receiver()
    _set_slack(service, space, slack.url)
    pool = Pool(service, space, token, 2)
    probe = Probe(service, space, token)
    stream_seqs: list[int] = []
    stream_state: dict = {}

    async def watch(stop: threading.Event) -> None:
        import websockets

        since, instance = None, None
        while not stop.is_set():
            url = f"ws://127.0.0.1:{service.port}/api/v1/realtime/spaces/{space}?token={token}"
            if since is not None:
                url += f"&since={since}&streamInstanceId={instance}"
            try:
                async with websockets.connect(url, open_timeout=3) as ws:
                    hello = json.loads(await ws.recv())
                    instance = hello.get("streamInstanceId")
                    if hello.get("missed"):
                        stream_state["missed"] = stream_state.get("missed", 0) + 1
                    since = hello.get("seq") if since is None else since
                    while not stop.is_set():
                        try:
                            msg = json.loads(await asyncio.wait_for(ws.recv(), 1))
                        except TimeoutError:
                            continue
                        if "seq" in msg and msg.get("type") not in ("connected",):
                            stream_seqs.append(msg["seq"])
                            since = max(since or 0, msg["seq"])
            except Exception:  # noqa: BLE001 - reconnect on anything, like a real client
                stream_state["reconnects"] = stream_state.get("reconnects", 0) + 1
                await asyncio.sleep(0.5)

    stop = threading.Event()
    watcher = threading.Thread(target=lambda: asyncio.run(watch(stop)), daemon=True)
    watcher.start()
    time.sleep(2)
    start = time.monotonic()
    _redis("stop")
    time.sleep(down_seconds)
    _redis("start")
    up = time.monotonic()
    time.sleep(3)
    probe.stop()
    settle(space, 120)
    time.sleep(5)  # let stream replay and notifications drain
    stop.set()
    watcher.join(10)
    pool.stop()
    result = outcome(space)
    (first_seq, last_seq) = db_rows(
        "SELECT min(e.seq), max(e.seq) FROM jobs_jobevent e JOIN spaces_space s ON s.id = e.space_id WHERE s.public_id = %s AND e.seq IS NOT NULL",
        (space,),
    )[0]
    seen = sorted(set(stream_seqs))
    gaps, gap_ranges = 0, []
    if seen:
        expected = set(range(seen[0], (last_seq or seen[-1]) + 1))
        missing = sorted(expected - set(seen))
        gaps = len(missing)
        # Where the holes are: inside what the watcher saw (lost), or after its last event
        # (not delivered before it stopped).
        for number in missing:
            if gap_ranges and gap_ranges[-1][1] == number - 1:
                gap_ranges[-1][1] = number
            else:
                gap_ranges.append([number, number])
    # Wait a little longer for notifications queued during the outage.
    end = time.monotonic() + 30
    while slack.count < result["completed"] and time.monotonic() < end:
        time.sleep(0.5)
    slack.close()
    return {
        "down_seconds": down_seconds,
        "api_during_outage": probe.window(start, up),
        **result,
        "stream_events_seen": len(seen),
        "stream_gaps": gaps,
        "stream_gap_ranges": gap_ranges[:20],
        "stream_last_seen": seen[-1] if seen else None,
        "stream_last_seq": last_seq,
        "stream_reconnects": stream_state.get("reconnects", 0),
        "stream_missed_flags": stream_state.get("missed", 0),
        "slack_completed_messages": slack.count,
    }


def scenario_hostile_endpoints(service: Service, jobs: int) -> dict:
    bad = {kind: Receiver(kind) for kind in ("hang", "trickle", "huge")}
    good = Receiver()
    spaces = {}
    for kind, receiver in bad.items():
        space, token = service.token(f"chaos-{kind}")
        _set_slack(service, space, receiver.url)
        spaces[kind] = (space, token)
    good_space, good_token = service.token("chaos-good-endpoint")
    _set_slack(service, good_space, good.url)
    start = time.monotonic()
    pools = []
    for space, token in [*spaces.values(), (good_space, good_token)]:
        create_bulk(service, space, token, jobs)
        pools.append(Pool(service, space, token, 1))
    for space, _ in [*spaces.values(), (good_space, good_token)]:
        settle(space, 120)
    processed = time.monotonic() - start
    end = time.monotonic() + 60
    while good.count < jobs and time.monotonic() < end:
        time.sleep(0.5)
    for pool in pools:
        pool.stop()
    outcomes = {kind: outcome(space) for kind, (space, _) in spaces.items()}
    deliveries = dict(
        db_rows(
            "SELECT CASE WHEN d.success THEN 'ok' ELSE 'failed' END, count(*) FROM notifications_notificationdelivery d "
            "JOIN spaces_space s ON s.id = d.space_id WHERE s.public_id = ANY(%s) GROUP BY 1",
            ([s for s, _ in spaces.values()],),
        )
    )
    for receiver in [*bad.values(), good]:
        receiver.close()
    return {
        "jobs_per_space": jobs,
        "all_processed_seconds": round(processed, 1),
        "lost": sum(o["lost"] for o in outcomes.values()) + outcome(good_space)["lost"],
        "good_endpoint_messages": good.count,
        "hostile_endpoint_deliveries": deliveries,
    }


def scenario_two_web_processes(service: Service, events: int) -> dict:
    import websockets

    second_port = free_port()
    second = subprocess.Popen(
        [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(second_port), "config.asgi:application"],
        cwd=ROOT,
        env=service.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    space, token = service.token("chaos-two-webs")
    received: list[float] = []
    sent: dict[str, float] = {}

    async def main() -> None:
        for _ in range(100):
            try:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{second_port}/api/v1/realtime/spaces/{space}?token={token}"
                )
                break
            except OSError:
                await asyncio.sleep(0.2)
        async with ws:
            await ws.recv()
            client = Http(service.port, token)
            arrived: dict[str, float] = {}

            async def read() -> None:
                # Reads while the jobs are being created.
                end = time.monotonic() + 60
                while len(arrived) < events and time.monotonic() < end:
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1))
                    except TimeoutError:
                        continue
                    if msg.get("type") == "created":
                        arrived[msg.get("jobId")] = time.perf_counter()

            reader = asyncio.create_task(read())
            for _ in range(events):
                t = time.perf_counter()
                _, body = await asyncio.to_thread(
                    client.call, "POST", f"/api/v1/spaces/{space}/jobs", {"name": "across"}
                )
                sent[body["id"]] = t
            await asyncio.wait_for(reader, 70)
            # From the create call's start (the event usually overtakes the call's answer).
            received.extend(arrived[j] - t for j, t in sent.items() if j in arrived)

    try:
        asyncio.run(main())
    finally:
        second.terminate()
        second.wait(10)
    return {
        "created_on_web_1": events,
        "streamed_on_web_2": len(received),
        "p99_ms": ms(pct(received, 99)) if received else None,
    }


COLUMNS = [
    ("scenario", 18),
    ("created", 8),
    ("completed", 9),
    ("dead", 5),
    ("lost", 5),
    ("dup", 4),
    ("api ok", 7),
    ("p99 ms", 8),
    ("secs", 6),
    ("notes", 0),
]


def notes(name: str, row: dict) -> str:
    """The figure that proves each scenario's own promise."""
    if name == "sigkill":
        return f"{row.get('kills')} kills; redelivered <= {row.get('max_redelivery_past_timeout_s')} s past timeout"
    if name == "sigstop":
        return f"late calls refused {row.get('late_calls_refused_409')}/{row.get('rounds')}, stale results {row.get('jobs_with_stale_result')}"
    if name == "postgres_restart":
        return f"recovered {row.get('recovered_seconds_after_start')} s after start; statuses while down {row.get('api_while_down', {}).get('statuses')}"
    if name == "redis_outage":
        return (
            f"stream gaps {row.get('stream_gaps')}, reconnects {row.get('stream_reconnects')}, "
            f"slack completed {row.get('slack_completed_messages')}/{row.get('completed')}"
        )
    if name == "hostile_endpoints":
        return f"all processed in {row.get('all_processed_seconds')} s; good endpoint got {row.get('good_endpoint_messages')}"
    if name == "two_web_processes":
        return f"streamed on web 2: {row.get('streamed_on_web_2')}/{row.get('created_on_web_1')}, p99 {row.get('p99_ms')} ms"
    return ""


def table(report: dict, names: list[str]) -> str:
    """One line per scenario: the figures the README's Reliability section quotes."""
    lines = ["  ".join(title.rjust(width) for title, width in COLUMNS)]
    for name in names:
        row = report.get(name, {})
        api = row.get("api") or row.get("api_during_outage") or row.get("api_while_down") or {}
        if "error" in row:
            lines.append(f"{name:>18}  error: {row['error']}")
            continue
        values = [
            name,
            row.get("created", "-"),
            row.get("completed", "-"),
            row.get("dead", "-"),
            row.get("lost", "-"),
            row.get("duplicate_concurrent_holders", "-"),
            api.get("success_rate", "-") if api else "-",
            api.get("p99_ms", "-") if api else "-",
            row.get("scenario_seconds", "-"),
            notes(name, row),
        ]
        lines.append("  ".join(str(v).rjust(w) for v, (_, w) in zip(values, COLUMNS, strict=True)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    quick = args.quick
    # The Procfile's defaults: one web process per core, 4 Celery processes.
    service = Service(os.cpu_count() or 1, celery_concurrency=4)
    service.env["OUTBOUND_ALLOW_PRIVATE"] = "true"  # the receivers live on 127.0.0.1
    service.env["OUTBOUND_ALLOW_PRIVATE_FORCE"] = "true"
    service.prepare()
    service.start()
    scenarios = {
        "sigkill": lambda: scenario_sigkill(service, 1000 if quick else 5000, 50 if quick else 200),
        "sigstop": lambda: scenario_sigstop(service, 2 if quick else 5),
        "postgres_restart": lambda: scenario_postgres_restart(service, 3 if quick else 8),
        "redis_outage": lambda: scenario_redis_outage(service, 10 if quick else 60),
        "hostile_endpoints": lambda: scenario_hostile_endpoints(service, 20 if quick else 100),
        "two_web_processes": lambda: scenario_two_web_processes(service, 20 if quick else 100),
    }
    chosen = [s for s in args.only.split(",") if s] or list(scenarios)
    report = {"when": datetime.now(tz=UTC).isoformat(), "mode": "quick" if quick else "full"}
    try:
        for name in chosen:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            try:
                report[name] = scenarios[name]()
            except Exception as exc:  # noqa: BLE001 - report the failure and go on
                report[name] = {"error": repr(exc)}
            report[name]["scenario_seconds"] = round(time.monotonic() - started, 1)
            print(json.dumps(report[name], indent=2), flush=True)
    finally:
        service.stop()
    out = (
        ROOT
        / "bench"
        / "results"
        / f"chaos-{datetime.now(tz=UTC).strftime('%Y%m%dT%H%M%SZ')}-{report['mode']}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("\n" + table(report, chosen))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        port, token, space, tag, mode = sys.argv[2:7]
        worker_main(int(port), token, space, tag, mode)
    else:
        main()
