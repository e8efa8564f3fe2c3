"""Body limits: 413 JSON on every API write, over-size WebSocket frames close the socket, and a
flood of large bodies does not grow a running server's memory without bound."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from rest_framework.test import APIClient

from jobs import consumers, services, streams
from spaces import scopes
from tests.factories import issue_key

from .test_isolation import ROUTES, fill, http_routes, view_methods

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024


def write_routes() -> list[tuple[str, str]]:
    """(route, method) for every API route that takes a body."""
    found = []
    for route, pattern in http_routes():
        if not route.startswith("api/"):
            continue
        for method in sorted(view_methods(pattern) & {"POST", "PUT", "PATCH"}):
            found.append((route, method))
    return found


def test_the_write_routes_are_the_matrix_writes():
    """The enumeration finds what the isolation matrix lists (so it cannot silently shrink)."""
    expected = {
        (route, method)
        for route, case in ROUTES.items()
        if case.kind.startswith("api")
        for method in case.methods
        if method in ("POST", "PUT", "PATCH")
    }
    assert set(write_routes()) == expected
    assert len(expected) >= 20


# Views that never read the body, so the parser's cap never runs and the body is ignored.
BODY_IGNORED: dict[str, str] = {}


def write_cases() -> list:
    cases = []
    for route, method in write_routes():
        marks = []
        if route in BODY_IGNORED:
            marks.append(
                pytest.mark.xfail(
                    strict=True,
                    reason=f"{BODY_IGNORED[route]} never reads request.data, "
                    "so an over-size body is accepted instead of answered with 413",
                )
            )
        cases.append(pytest.param(route, method, marks=marks))
    return cases


@pytest.mark.parametrize(("route", "method"), write_cases())
def test_an_over_size_body_gets_413_json_on_every_api_write(route, method, space, settings):
    from .conftest import _schedule

    settings.API_MAX_BODY_BYTES = LIMIT
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    job, _ = services.create_job(space, {"name": "x"})
    _schedule(space)  # "nightly", so the schedule routes get as far as the body
    key = issue_key(space, sorted(scopes.ALL))
    values = {
        "spaceId": space.public_id,
        "space_id": space.public_id,
        "jobId": job.id,
        "name": "nightly",
        "fingerprint": "0123456789abcdef",
    }
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    big = json.dumps({"payload": "x" * (LIMIT + 1)}).encode()
    response = getattr(client, method.lower())(
        fill(route, values), big, content_type="application/json"
    )
    assert response.status_code == 413, (route, method, response.status_code)
    assert response.json()["code"] == "payload_too_large"
    # A compressed body that inflates past the limit is refused the same way (where
    # Content-Encoding is accepted at all; elsewhere it is a 415).
    bomb = gzip.compress(b"[" + b" " * (LIMIT * 4) + b"]")
    response = getattr(client, method.lower())(
        fill(route, values), bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code in (413, 415), (route, method, response.status_code)
    assert response["Content-Type"].startswith("application/json")


def test_a_body_just_under_the_limit_is_parsed(space, settings, api):
    """The control: the limit is where it says, not lower."""
    settings.API_MAX_BODY_BYTES = LIMIT
    body = json.dumps({"name": "x", "payload": {"pad": ""}})
    pad = LIMIT - len(body)
    body = json.dumps({"name": "x", "payload": {"pad": "y" * pad}}).encode()
    assert len(body) == LIMIT
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs", body, content_type="application/json"
    )
    assert response.status_code == 201, response.content


# --- WebSocket frames ------------------------------------------------------------------------


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_an_over_size_websocket_frame_closes_the_socket(space, settings):
    from config.asgi import application

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()
    try:
        token = await database_sync_to_async(issue_key)(space, [scopes.READ])
        job, _ = await database_sync_to_async(services.create_job)(space, {"name": "x"})
        for path in (
            f"/api/v1/realtime/{job.id}?token={token}",
            f"/api/v1/realtime/spaces/{space.public_id}?token={token}",
        ):
            comm = WebsocketCommunicator(application, path)
            assert (await comm.connect())[0]
            await comm.receive_json_from(timeout=5)  # init / connected
            # Within the limit: answered.
            await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 100}))
            assert (await comm.receive_json_from(timeout=5))["type"] == "pong"
            await comm.send_to(text_data="x" * (consumers.MAX_FRAME_BYTES + 1))
            closed = await comm.receive_output(timeout=5)
            assert closed == {"type": "websocket.close", "code": 4413}, path
            await comm.wait()
    finally:
        await database_sync_to_async(connections.close_all)()


# --- memory under a flood of large bodies ----------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_flood_of_large_bodies_does_not_grow_server_memory_without_bound(space):
    key = issue_key(space, sorted(scopes.ALL))
    port = free_port()
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "",
        "CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/spaces/{space.public_id}/jobs"
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness
            try:
                session.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "no daphne"
                time.sleep(0.1)
        seven = json.dumps({"name": "flood", "payload": {"pad": "z" * (7 * 1024 * 1024)}})
        over = json.dumps({"name": "flood", "payload": {"pad": "z" * (9 * 1024 * 1024)}})
        statuses: dict[int, int] = {}

        def send(body: str) -> None:
            response = session.post(url, data=body, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        for _ in range(10):  # warm-up: allocator arenas, imports, connections
            send(seven)
        before = rss_bytes(process.pid)
        for i in range(200):
            send(seven if i % 4 else over)
        after = rss_bytes(process.pid)
        assert process.poll() is None, "the server died"
        # Every one was refused (payload over 1 MiB, or body over 8 MiB), none was a 5xx.
        assert set(statuses) <= {400, 413}, statuses
        growth = after - before
        print(f"RSS before {before >> 20} MiB, after {after >> 20} MiB, growth {growth >> 20} MiB")
        assert growth < 200 * 1024 * 1024, f"RSS grew by {growth >> 20} MiB over 200 requests"
        # And it still answers normally.
        assert session.post(url, data=json.dumps({"name": "ok"}), timeout=10).status_code == 201
    finally:
        process.terminate()
        process.wait(10)
