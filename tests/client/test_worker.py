"""The worker runner against a real server: exactly once, failures, keepalives, shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from jobyard import Worker, errors, parse_error
from jobyard.worker import SHUTDOWN_ERROR
from tests import threads

ROOT = Path(__file__).resolve().parents[2]


def _until(predicate, timeout: float = 60.0, interval: float = 0.1):
    """Wait for a condition the server reaches on its own (bounded; not a timed assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


@contextlib.contextmanager
def running(worker: Worker):
    thread = threads.spawn(worker.run, install_signal_handlers=False)
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
    # Raises what the runner raised (a runner that died would otherwise look like a quiet one).
    thread.result(0)


def _types(job: dict) -> list[str]:
    return [event["type"] for event in job["events"]]


def test_a_worker_processes_500_jobs_with_concurrency_8_exactly_once(client):
    # given
    created = client.create_many({"name": "count", "payload": {"n": n}} for n in range(500))
    ids = {job["id"] for job in created}
    assert len(ids) == 500
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def handle(job):
        with lock:
            seen[job.id] += 1
        return {"n": job.payload["n"]}

    # when
    worker = Worker(handle, client=client, concurrency=8, wait_seconds=2)
    with running(worker):
        _until(lambda: worker.stats["completed"] >= 500, timeout=240)

    # then: each job ran once, was handed out once and completed once
    assert set(seen) == ids
    assert max(seen.values()) == 1
    completed = list(client.iter_jobs(status="completed", page_size=100))
    assert {job["id"] for job in completed} == ids
    for job_id in ids:
        job = client.get(job_id)
        types = Counter(_types(job))
        # Polled with ack, a job goes straight to running: one "started", no "delivered".
        assert types["started"] == 1 and types["completed"] == 1, (job_id, types)
        assert types["delivered"] == 0 and types["retried"] == 0, (job_id, types)
        assert job["attemptNumber"] == 0  # the first attempt (the server counts from 0)
    assert worker.stats == {"completed": 500, "failed": 0, "dropped": 0, "failed_back": 0}


def test_an_exception_becomes_a_failure_and_then_a_retry(client):
    job_id = client.create(
        "flaky",
        {"x": 1},
        max_retries=2,
        backoff={"type": "fixed", "delaySeconds": 0, "jitter": False},
    )["id"]
    attempts: list[int] = []

    def handle(job):
        attempts.append(job.attempt_number)
        if job.attempt_number == 0:
            raise RuntimeError("boom on the first attempt")
        return {"ok": True}

    worker = Worker(handle, client=client, concurrency=2, wait_seconds=1)
    with running(worker):
        final = client.wait(job_id, timeout=60)

    assert attempts == [0, 1]
    assert final["status"] == "completed"
    assert final["result"] == {"ok": True}
    assert final["attemptNumber"] == 1
    retried = [e for e in final["events"] if e["type"] == "retried"]
    assert len(retried) == 1
    error = parse_error(retried[0]["data"]["error"])
    assert error["type"] == "RuntimeError"
    assert error["message"] == "boom on the first attempt"
    assert "in handle" in error["traceback"]
    assert worker.stats["failed"] == 1 and worker.stats["completed"] == 1


def test_a_permanent_failure_goes_dead_without_a_retry(client):
    job_id = client.create("bad", {}, max_retries=3)["id"]

    def handle(job):
        raise errors.PermanentFailure("the payload is unusable")

    worker = Worker(handle, client=client, wait_seconds=1)
    with running(worker):
        final = client.wait(job_id, timeout=60)

    assert final["status"] == "dead"
    assert parse_error(final["error"])["message"] == "the payload is unusable"
    assert parse_error(final["error"])["type"] == "jobyard.errors.PermanentFailure"
    assert final["attemptNumber"] == 0
    # the worker's last word in the job's own log
    fatal = client.logs(job_id, level="fatal")["logs"]
    assert len(fatal) == 1 and "permanent failure" in fatal[0]["message"]


def test_the_handle_reports_progress_checkpoints_events_and_logs(client):
    job_id = client.create("report", {"steps": 3})["id"]

    def handle(job):
        job.checkpoint({"step": 0})
        for step in range(job.payload["steps"]):
            job.progress(
                (step + 1) * 100 // job.payload["steps"],
                f"step {step + 1}",
                sub={"download": {"percent": 100}},
            )
            job.log("info", f"did step {step + 1}", step=step + 1)
        job.event("thumbnail.ready", {"url": "https://example.com/t.png"})
        job.log("warning", "almost done")
        return {"steps": job.payload["steps"]}

    worker = Worker(handle, client=client, wait_seconds=1)
    with running(worker):
        final = client.wait(job_id, timeout=60)

    assert final["status"] == "completed"
    assert final["progress"]["percent"] == 100
    types = _types(final)
    assert "checkpoint" in types and "thumbnail.ready" in types and types.count("progress") == 3
    logs = client.logs(job_id)
    lines = logs["logs"]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("info", "did step 1"),
        ("info", "did step 2"),
        ("info", "did step 3"),
        ("warn", "almost done"),
    ]


def test_keepalives_keep_a_long_job_alive_past_its_timeout(client):
    # given a 2 s timeout and a job that takes about 4 s
    job_id = client.create("long", {"seconds": 4}, timeout_seconds=2, max_retries=0)["id"]

    def handle(job):
        time.sleep(job.payload["seconds"])
        return {"done": True}

    # when
    worker = Worker(handle, client=client, wait_seconds=1)
    with running(worker):
        final = client.wait(job_id, timeout=60)

    # then it completed on its first attempt
    assert final["status"] == "completed"
    assert final["attemptNumber"] == 0
    assert "keepalive" in _types(final) or final["result"] == {"done": True}
    assert worker.stats["completed"] == 1


def test_without_keepalives_the_same_job_times_out(client):
    # The control for the test above: the scheduler does enforce the deadline.
    job_id = client.create("long", {"seconds": 4}, timeout_seconds=2, max_retries=0)["id"]

    def handle(job):
        time.sleep(job.payload["seconds"])
        return {"done": True}

    worker = Worker(handle, client=client, wait_seconds=1, keepalive=False)
    with running(worker):
        final = client.wait(job_id, timeout=60)
        _until(lambda: worker.stats["dropped"] == 1, timeout=30)

    assert final["status"] == "dead"
    assert final["error"] == "timeout"


def test_a_killed_job_is_dropped_by_the_runner(client):
    job_id = client.create("killme", {})["id"]
    started = threading.Event()
    saw_cancel = threading.Event()

    def handle(job):
        started.set()
        # The keepalive thread learns of the kill and sets `cancelled`.
        if job.cancelled.wait(timeout=30):
            saw_cancel.set()
        job.progress(50, "still going")  # raises JobKilled
        return {"never": True}

    worker = Worker(handle, client=client, wait_seconds=1, keepalive_interval=0.2)
    with running(worker):
        assert started.wait(timeout=30)
        client.kill(job_id, "no longer needed")
        _until(lambda: worker.stats["dropped"] == 1, timeout=30)

    assert saw_cancel.is_set()
    final = client.get(job_id)
    assert final["status"] == "killed"
    assert worker.stats["completed"] == 0


# --- the command line, stopped with SIGTERM --------------------------------------------------


def _start_cli_worker(creds, tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "JOBYARD_URL": creds.url,
        "JOBYARD_TOKEN": creds.token,
        "JOBYARD_TEST_MARKERS": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobyard",
            "worker",
            "--space",
            creds.id,
            "--concurrency",
            "2",
            "--wait-seconds",
            "1",
            *extra,
            "tests.client.jobfuncs:slow",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _sigterm_mid_job(process: subprocess.Popen, marker: Path) -> str:
    try:
        _until(marker.exists, timeout=60)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(client, creds, tmp_path):
    job_id = client.create("slow", {"seconds": 1.5})["id"]
    process = _start_cli_worker(creds, tmp_path, "--grace-period", "30")

    _sigterm_mid_job(process, tmp_path / job_id)

    job = client.get(job_id)
    assert job["status"] == "completed"
    assert job["result"] == {"slept": 1.5}


def test_sigterm_fails_a_job_back_to_the_queue_after_the_grace_period(client, creds, tmp_path):
    job_id = client.create(
        "slow",
        {"seconds": 60},
        max_retries=3,
        backoff={"type": "fixed", "delaySeconds": 0, "jitter": False},
    )["id"]
    other_id = client.create("slow", {"seconds": 60}, priority=-1)["id"]
    process = _start_cli_worker(creds, tmp_path, "--grace-period", "0.5", "--concurrency", "1")

    out = _sigterm_mid_job(process, tmp_path / job_id)

    # Not stuck: back in the queue for its next attempt, and the untouched one still pending.
    job = client.get(job_id)
    assert job["status"] in ("pending", "scheduled"), out
    assert job["attemptNumber"] == 1
    assert job["error"] == SHUTDOWN_ERROR
    assert client.get(other_id)["status"] == "pending"
    # ... and a new worker picks it up.
    seen = []

    def handle(j):
        seen.append(j.id)
        return "ok"

    worker = Worker(handle, client=client, wait_seconds=1, names=["slow"])
    with running(worker):
        _until(lambda: job_id in seen, timeout=30)


def test_logs_go_out_in_batches_and_in_order(client):
    job_id = client.create("chatty", {"lines": 250})["id"]

    def handle(job):
        for n in range(job.payload["lines"]):
            job.log("debug", f"line {n}", n=n)
        return None

    # No time-based flush in this test: only the size of the batch and the outcome flush.
    worker = Worker(
        handle, client=client, wait_seconds=1, log_batch_size=100, log_flush_interval=600
    )
    with running(worker):
        final = client.wait(job_id, timeout=60)

    lines = client.logs(job_id, limit=1000)["logs"]
    assert final["status"] == "completed"
    assert [line["message"] for line in lines] == [f"line {n}" for n in range(250)]
    # 100 + 100 + the last 50 before the outcome: three appends, three "logs" events.
    assert _types(final).count("logs") == 3
