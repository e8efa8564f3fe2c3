"""The web process (python -m config.serve) stops cleanly on SIGTERM: requests in flight finish.

Without REDIS_URL the channel layer is in-memory, so config.serve runs one serving process here;
tests/ops/test_serve_processes.py covers several processes behind one port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests import threads

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "graceful-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebProcess:
    def __init__(self, tmp_path: Path, *, keep=(), **env: str) -> None:
        self.port = _free_port()
        self.env = os.environ | {
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DEBUG": "0",
            "METRICS_TOKEN": METRICS_TOKEN,
            **env,
        }
        for name in ("DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY"):
            if name not in keep and name not in env:
                self.env.pop(name, None)
        self.log = tmp_path / "web.log"
        self.proc: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return done.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(self.port)]
            + ["config.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.wait_for(lambda: self.request("GET", "/healthz")[0] == 200, "server start")

    def request(self, method: str, path: str, body=None, headers=None, timeout=30.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError:
            return None, b""
        finally:
            conn.close()

    def in_progress(self) -> float:
        status, body = self.request(
            "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        for line in body.decode().splitlines():
            if line.startswith("jobyard_http_requests_in_progress "):
                return float(line.split()[1])
        return 0.0

    def wait_for(self, condition, what: str, limit: float = 60.0) -> None:
        # Waiting on another process to reach a state, not on a clock: the limit only stops
        # a broken run from hanging.
        deadline = time.monotonic() + limit
        while not condition():
            assert self.proc is None or self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def web(tmp_path) -> Iterator[WebProcess]:
    process = WebProcess(tmp_path)
    process.manage("migrate", "-v0")
    yield process
    process.stop()


def test_a_request_in_flight_finishes_after_sigterm(web):
    # given: a worker long-polling an empty space
    issued = json.loads(web.manage("issue_token", "--space", "ops", "--json").splitlines()[-1])
    web.start()

    def long_poll() -> tuple[int, bytes]:
        return web.request(
            "POST",
            f"/api/v1/spaces/{issued['spaceId']}/jobs/poll",
            body={"waitSeconds": 2},
            headers={"Authorization": f"Bearer {issued['token']}"},
        )

    poller = threads.spawn(long_poll)
    # The poll and this scrape itself are both in progress.
    web.wait_for(lambda: web.in_progress() >= 2, "the long poll to reach the application")

    # when
    web.proc.send_signal(signal.SIGTERM)
    answer = poller.result(60)
    code = web.proc.wait(60)

    # then: the poll got its full answer and the process exited cleanly
    assert answer == (200, b'{"jobs":[]}')
    assert code == 0
    log = web.log.read_text()
    assert "stopping: serving for" in log
    assert "stopped: no request in flight" in log


def test_an_idle_keep_alive_connection_does_not_hold_the_stop(web):
    web.start()
    idle = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read() == b'{"status": "ok"}'

    web.proc.send_signal(signal.SIGTERM)

    # The grace period is 25 s: an exit well before it means nothing waited for the idle socket.
    assert web.proc.wait(15) == 0
    idle.close()


def test_readiness_fails_while_draining_and_a_second_signal_stops_at_once(tmp_path):
    web = WebProcess(tmp_path, WEB_SHUTDOWN_DELAY_SECONDS="120")
    web.manage("migrate", "-v0")
    try:
        web.start()
        assert web.request("GET", "/readyz")[0] == 200

        web.proc.send_signal(signal.SIGTERM)
        web.wait_for(lambda: web.request("GET", "/readyz")[0] == 503, "readiness to fail")
        status, body = web.request("GET", "/readyz")
        # Still serving other requests during the delay.
        assert web.request("GET", "/healthz")[0] == 200

        web.proc.send_signal(signal.SIGTERM)
        assert web.proc.wait(30) == 0
    finally:
        web.stop()

    assert status == 503
    assert json.loads(body) == {"status": "draining", "failing": ["draining"]}


def test_a_stream_is_closed_with_going_away_and_its_token_is_not_logged(web):
    issued = json.loads(web.manage("issue_token", "--space", "ops", "--json").splitlines()[-1])
    web.start()
    url = (
        f"ws://127.0.0.1:{web.port}/api/v1/realtime/spaces/{issued['spaceId']}"
        f"?token={issued['token']}"
    )

    async def stream() -> tuple[str, int | None]:
        async with websockets.connect(url) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            web.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            except websockets.ConnectionClosed as closed:
                return first["type"], closed.rcvd.code if closed.rcvd else None
        return first["type"], None

    # On a thread of its own: the session's browser (tests/e2e, Playwright's sync API) keeps
    # an event loop running on the main thread, where asyncio.run() refuses to start another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first_type, code = pool.submit(asyncio.run, stream()).result()

    assert first_type == "connected"
    assert code == 1001
    assert web.proc.wait(30) == 0
    log = web.log.read_text()
    assert "stopped: no request in flight" in log
    assert issued["token"] not in log


def test_an_in_memory_channel_layer_means_one_process(tmp_path):
    web = WebProcess(tmp_path, WEB_CONCURRENCY="3")
    web.manage("migrate", "-v0")
    try:
        web.start()
        assert web.request("GET", "/healthz")[0] == 200
        web.proc.send_signal(signal.SIGTERM)
        assert web.proc.wait(30) == 0
    finally:
        web.stop()
    log = web.log.read_text()
    assert "the channel layer is in-memory" in log
    assert "serving from 1 process" in log
