"""End to end: daphne with channels-redis, a real `websockets` client and the REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection
from websockets.sync.client import connect

from spaces import scopes
from tests.factories import issue_key

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """The test database this process uses, for the server subprocess."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def server(settings) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness: wait until the port accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "daphne did not start: " + process.stderr.read().decode()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def receive(ws) -> dict:
    return json.loads(ws.recv(timeout=10))


def test_a_job_lifecycle_streams_live_and_replays_after_a_reconnect(server, space):
    # given: a worker key and the REST API of the running server
    token = issue_key(space, [scopes.WORKER, scopes.CREATE])
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    base = f"http://{server}/api/v1"

    def post(path: str, body: dict | None = None) -> dict:
        response = api.post(base + path, json=body or {}, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    space_url = f"ws://{server}/api/v1/realtime/spaces/{space.public_id}?token={token}"
    with connect(space_url) as space_ws:
        connected = receive(space_ws)
        assert (connected["type"], connected["seq"], connected["missed"]) == ("connected", 0, False)
        instance = connected["streamInstanceId"]

        job_id = post(f"/spaces/{space.public_id}/jobs", {"name": "video.encode"})["id"]
        created = receive(space_ws)
        assert (created["type"], created["seq"], created["jobId"]) == ("created", 1, job_id)
        assert created["counts"]["pending"] == 1

        with (
            connect(f"ws://{server}/api/v1/realtime/{job_id}?token={token}") as job_ws,
            connect(f"ws://{server}/api/v1/realtime/{job_id}") as public_ws,
        ):
            assert receive(job_ws)["type"] == "init"
            public_init = receive(public_ws)
            assert public_init == {
                "type": "init",
                "jobId": job_id,
                "status": "pending",
                "progress": None,
                "timestamp": public_init["timestamp"],
                "data": {"status": "pending", "progress": None},
            }
            claim_id = post(f"/spaces/{space.public_id}/jobs/poll")["jobs"][0]["claimId"]
            api.headers["X-Claim-Id"] = claim_id
            post(f"/jobs/{job_id}/ack")
            assert [receive(space_ws)["type"] for _ in range(2)] == ["delivered", "started"]
            assert [receive(job_ws)["seq"] for _ in range(2)] == [2, 3]

            # when: the space stream drops, and the job moves on meanwhile
            space_ws.close()
            post(f"/jobs/{job_id}/progress", {"percent": 60, "message": "encoding"})
            post(f"/jobs/{job_id}/complete", {"result": {"url": "s3://out.mp4"}})

            # the job streams saw it live: full events, and the public progress view
            assert [(e["type"], e["seq"]) for e in (receive(job_ws), receive(job_ws))] == [
                ("progress", 4),
                ("completed", 5),
            ]
            public = [receive(public_ws), receive(public_ws)]
            assert [(e["type"], e["data"]) for e in public] == [
                ("progress", {"percent": 60, "message": "encoding"}),
                ("completed", {}),
            ]

    # then: a reconnect with since replays exactly what was missed, in order
    with connect(f"{space_url}&since=3&streamInstanceId={instance}") as space_ws:
        connected = receive(space_ws)
        assert (connected["seq"], connected["missed"]) == (5, False)
        assert connected["counts"]["completed"] == 1
        replayed = [receive(space_ws), receive(space_ws)]
        assert [(e["type"], e["seq"]) for e in replayed] == [("progress", 4), ("completed", 5)]
        assert replayed[1]["data"] == {"result": {"url": "s3://out.mp4"}}
        # A count-changing event carries its counts when replayed too; progress has none.
        assert "counts" not in replayed[0]
        assert replayed[1]["counts"] == connected["counts"]


def test_close_codes_reach_a_real_client(server, space):
    from websockets.exceptions import ConnectionClosed

    url = f"ws://{server}/api/v1/realtime/spaces/{space.public_id}"
    with connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4401
