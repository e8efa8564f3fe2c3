"""The Celery worker outlives a broker outage: Redis stops, the worker keeps running and
reconnects when Redis is back, so notifications queued meanwhile still go out."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_worker_survives_redis_going_away_and_answers_when_it_is_back(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "VAR_DIR": str(tmp_path),
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    log = tmp_path / "worker.log"
    redis = _redis(port)
    worker = None
    try:
        with log.open("w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"]
                + ["--loglevel=INFO", "--hostname", f"reconnect{port}@localhost"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        assert _wait_for(lambda: "ready." in log.read_text(), 60), log.read_text()[-2000:]

        redis.terminate()
        redis.wait(10)
        assert _wait_for(lambda: "broker" in log.read_text().lower().split("ready.", 1)[1], 20)
        time.sleep(3)  # several reconnect attempts fail meanwhile
        assert worker.poll() is None, log.read_text()[-2000:]

        redis = _redis(port)

        def answers() -> bool:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "config", "inspect", "ping"]
                + ["--timeout", "2", "-d", f"reconnect{port}@localhost"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return ping.returncode == 0 and "pong" in ping.stdout

        assert _wait_for(answers, 60), log.read_text()[-2000:]
        assert worker.poll() is None
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(10)
        redis.kill()
        redis.wait(10)
