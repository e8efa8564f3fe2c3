"""Push wakes: a signed wake leads to a claim; a bad signature is refused."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from jobyard import InvalidSignature, PushApp, Worker, receive_push, sign, verify_signature
from tests import threads

ROOT = Path(__file__).resolve().parents[2]


def _wake(job_id: str, space_id: str, name: str = "wake") -> bytes:
    return json.dumps(
        {
            "type": "job.pending",
            "jobId": job_id,
            "spaceId": space_id,
            "name": name,
            "timestamp": "2026-01-01T00:00:00Z",
        }
    ).encode()


def test_it_verifies_the_sha256_signature_of_the_exact_body():
    body = b'{"type":"job.pending","jobId":"01J"}'

    assert verify_signature(body, sign(body, "s3cret"), "s3cret")
    assert verify_signature(body, sign(body, "s3cret").split("=", 1)[1], "s3cret")
    assert verify_signature(body, "sha256=00, " + sign(body, "s3cret"), "s3cret")
    assert not verify_signature(body + b" ", sign(body, "s3cret"), "s3cret")
    assert not verify_signature(body, sign(body, "other"), "s3cret")
    assert not verify_signature(body, None, "s3cret")
    assert not verify_signature(body, "md5=abc", "s3cret")


def test_a_signed_wake_claims_the_job(client, creds):
    job_id = client.create("wake", {"n": 1})["id"]
    body = _wake(job_id, creds.id)
    secret = creds.push_secret

    descriptor = receive_push(body, sign(body, secret), secret=secret, client=client)

    assert descriptor["id"] == job_id
    assert descriptor["claimId"]
    assert client.get(job_id)["status"] == "delivered"
    # A second wake for the same job finds it taken: no claim, no error.
    assert receive_push(body, sign(body, secret), secret=secret, client=client) is None


def test_a_badly_signed_wake_is_refused_and_claims_nothing(client, creds):
    job_id = client.create("wake", {"n": 1})["id"]
    body = _wake(job_id, creds.id)

    with pytest.raises(InvalidSignature):
        receive_push(body, sign(body, "not-the-secret"), secret=creds.push_secret, client=client)

    assert client.get(job_id)["status"] == "pending"


def test_a_wake_for_another_job_name_is_ignored(client, creds):
    job_id = client.create("other", {})["id"]
    body = _wake(job_id, creds.id, name="other")
    secret = creds.push_secret

    assert (
        receive_push(body, sign(body, secret), secret=secret, client=client, names=["wake"]) is None
    )
    assert client.get(job_id)["status"] == "pending"


def _environ(body: bytes, signature: str | None) -> dict:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if signature is not None:
        environ["HTTP_X_JOBYARD_SIGNATURE"] = signature
    return environ


def _call(app, environ) -> tuple[str, dict]:
    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(app(environ, start_response))
    return seen["status"], json.loads(body)


def test_the_wsgi_app_claims_and_runs_the_job(client, creds):
    job_id = client.create("wake", {"n": 2})["id"]
    worker = Worker(lambda job: {"double": job.payload["n"] * 2}, client=client)
    app = PushApp(worker, secret=creds.push_secret)
    body = _wake(job_id, creds.id)

    try:
        refused = _call(app, _environ(body, sign(body, "wrong")))
        unsigned = _call(app, _environ(body, None))
        accepted = _call(app, _environ(body, sign(body, creds.push_secret)))
        final = client.wait(job_id, timeout=30)
    finally:
        worker.close()

    assert refused == ("401 Unauthorized", {"error": "bad signature", "code": "invalid_signature"})
    assert unsigned[0] == "401 Unauthorized"
    assert accepted == ("202 Accepted", {"claimed": job_id})
    assert final["status"] == "completed"
    assert final["result"] == {"double": 4}


def test_the_wsgi_app_does_not_claim_when_the_worker_is_full(client, creds):
    job_id = client.create("wake", {})["id"]
    worker = Worker(lambda job: None, client=client)
    worker.stop()  # a stopping worker takes no new work
    app = PushApp(worker, secret=creds.push_secret)
    body = _wake(job_id, creds.id)

    status, _ = _call(app, _environ(body, sign(body, creds.push_secret)))

    assert status == "503 Service Unavailable"
    assert client.get(job_id)["status"] == "pending"


def test_the_server_wakes_a_push_receiver_which_runs_the_job(client, creds, server):
    # given a receiver on a free port, registered as the space's push URL
    worker = Worker(lambda job: {"pushed": True}, client=client, concurrency=2)
    app = PushApp(worker, secret=creds.push_secret)

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = make_server("127.0.0.1", 0, app, Server, Quiet)
    serving = threads.spawn(httpd.serve_forever, close_db=False)
    receiver = f"http://127.0.0.1:{httpd.server_port}/"
    server.shell(
        "from notifications.models import SpaceChannels;"
        f"SpaceChannels.objects.filter(space__public_id={creds.id!r}).update(push_url={receiver!r})"
    )
    try:
        # when a job is created, nobody polls: only the wake can get it done
        job_id = client.create("wake", {})["id"]
        final = client.wait(job_id, timeout=60)
    finally:
        httpd.shutdown()
        worker.close()
    serving.result(5)

    # then
    assert final["status"] == "completed"
    assert final["result"] == {"pushed": True}
    # Claimed by id (a "delivered" event, then the runner's ack), not by a poll.
    assert any(e["type"] == "delivered" for e in final["events"])


def test_the_push_command_serves_a_receiver_that_runs_jobs(client, creds):
    secret = creds.push_secret
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "JOBYARD_URL": creds.url,
        "JOBYARD_TOKEN": creds.token,
        "JOBYARD_SPACE": creds.id,
        "JOBYARD_PUSH_SECRET": secret,
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "jobyard", "push", "--listen", f"127.0.0.1:{port}"]
        + ["tests.client.jobfuncs:echo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        job_id = client.create("wake", {"hello": "push"})["id"]
        body = _wake(job_id, creds.id)
        answer = None
        for _ in range(100):  # until the receiver listens
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/",
                    data=body,
                    headers={"X-Jobyard-Signature": sign(body, secret)},
                    timeout=10,
                )
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        final = client.wait(job_id, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)

    assert answer is not None and answer.status_code == 202, out
    assert answer.json() == {"claimed": job_id}
    assert final["status"] == "completed"
    assert final["result"] == {"echo": {"hello": "push"}}
    assert process.returncode == 0, out.decode(errors="replace")
