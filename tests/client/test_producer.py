"""The producer side against a real server: create, get, list, wait, kill, retry, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobyard import Client, Worker, errors
from tests import threads

ROOT = Path(__file__).resolve().parents[2]


def test_it_creates_a_job_with_every_field(client):
    when = datetime.now(UTC) + timedelta(hours=1)

    created = client.create(
        "report.build",
        {"month": "2026-01"},
        max_retries=5,
        timeout_seconds=120,
        scheduled_for=when,
        callback_url="https://example.com/hook",
        callback_headers={"X-Team": "data"},
        priority=7,
        idempotency_key="report-2026-01",
        backoff={"type": "fixed", "delaySeconds": 5, "maxDelaySeconds": 5, "jitter": False},
    )
    job = client.get(created["id"])

    assert created["status"] == "scheduled"
    assert created["spaceId"] == client.space
    assert job["payload"] == {"month": "2026-01"}
    assert (job["maxRetries"], job["timeoutSeconds"], job["priority"]) == (5, 120, 7)
    assert job["callbackHeaders"] == {"X-Team": "data"}
    assert job["idempotencyKey"] == "report-2026-01"
    assert job["backoff"]["type"] == "fixed"
    assert [e["type"] for e in job["events"]] == ["created"]


def test_an_idempotency_key_returns_the_first_job(client):
    first = client.create("charge", {"amount": 10}, idempotency_key="order-1")
    again = client.create("charge", {"amount": 10}, idempotency_key="order-1")

    assert again["id"] == first["id"]
    assert len(list(client.iter_jobs(name="charge"))) == 1


def test_it_creates_many_jobs_in_input_order(client):
    created = client.create_many(
        [{"name": "a", "payload": 1}, {"name": "b", "maxRetries": 0}, {"name": "c", "priority": 2}]
    )

    assert [client.get(job["id"])["name"] for job in created] == ["a", "b", "c"]
    assert client.get(created[1]["id"])["maxRetries"] == 0


def test_a_bad_job_in_a_batch_creates_nothing(client):
    with pytest.raises(errors.ValidationError) as info:
        client.create_many([{"name": "ok"}, {"name": "bad", "maxRetries": 99}])

    assert info.value.status == 400
    assert info.value.details
    assert list(client.iter_jobs()) == []


def test_it_lists_with_filters_and_pages_through_everything(client):
    created = client.create_many({"name": "n" if i % 2 else "m", "payload": i} for i in range(7))
    client.kill(created[0]["id"])

    page = client.list(limit=3)
    everything = [job["id"] for job in client.iter_jobs(page_size=3)]
    named = [job["payload"] for job in client.iter_jobs(name="n", page_size=2)]
    killed = list(client.iter_jobs(status="killed"))

    assert len(page["jobs"]) == 3
    assert everything == [job["id"] for job in reversed(created)]  # newest first
    assert named == [5, 3, 1]
    assert [job["id"] for job in killed] == [created[0]["id"]]


@pytest.mark.parametrize("use_stream", [True, False])
def test_wait_returns_the_finished_job(client, use_stream):
    job_id = client.create("double", {"n": 21})["id"]
    worker = Worker(lambda job: job.payload["n"] * 2, client=client, wait_seconds=1)
    thread = threads.spawn(worker.run, install_signal_handlers=False)
    try:
        final = client.wait(job_id, timeout=60, use_stream=use_stream, poll_interval=0.2)
    finally:
        worker.stop()
        thread.join(30)
    thread.result(0)

    assert final["status"] == "completed"
    assert final["result"] == 42


def test_wait_gives_up_after_its_timeout(client):
    job_id = client.create("nobody.runs.this", {})["id"]

    with pytest.raises(errors.WaitTimeout):
        client.wait(job_id, timeout=0.5)
    with pytest.raises(TimeoutError):
        client.wait(job_id, timeout=0.5, use_stream=False, poll_interval=0.1)


def test_kill_then_retry_sends_the_job_back_to_the_queue(client):
    job_id = client.create("k", {})["id"]

    client.kill(job_id, "wrong payload")
    killed = client.wait(job_id, timeout=10)
    client.retry(job_id)

    assert killed["status"] == "killed"
    assert client.get(job_id)["status"] == "pending"


def test_server_errors_arrive_typed(client, creds):
    job_id = client.create("x", {})["id"]
    client.kill(job_id)

    with pytest.raises(errors.NotFound) as not_found:
        client.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(errors.JobKilled) as killed:
        client.complete(job_id, {})
    with pytest.raises(errors.ValidationError) as invalid:
        client.create("")
    with pytest.raises(errors.AuthError) as unauthorised:
        Client(creds.url, "emit_" + "x" * 40, creds.id).get(job_id)

    assert (not_found.value.status, not_found.value.code) == (404, "not_found")
    assert (killed.value.status, killed.value.code) == (409, "job_killed")
    assert "name" in invalid.value.details
    assert unauthorised.value.status == 401


def test_a_missing_scope_is_a_scope_error(server, creds):
    out = server.manage("issue_token", "--space", creds.id, "--scopes", "jobs:read", "--json")
    reader = Client(creds.url, json.loads(out.strip().splitlines()[-1])["token"], creds.id)

    with pytest.raises(errors.ScopeError) as info:
        reader.create("x")

    assert info.value.status == 403
    assert info.value.message == "Missing required scope: jobs:create"


def test_batch_complete_and_fail(client):
    client.create_many([{"name": "b1"}, {"name": "b2", "maxRetries": 0}])
    jobs = client.poll(count=2, ack=True)
    by_name = {job["name"]: job for job in jobs}

    done = client.complete_many(
        [{"id": by_name["b1"]["id"], "claimId": by_name["b1"]["claimId"], "result": 1}]
    )
    failed = client.fail_many(
        [{"id": by_name["b2"]["id"], "claimId": by_name["b2"]["claimId"], "error": "nope"}]
    )

    assert done["results"][0]["ok"] is True
    assert failed["results"][0]["ok"] is True
    assert client.get(by_name["b1"]["id"])["status"] == "completed"
    assert client.get(by_name["b2"]["id"])["status"] == "dead"


def test_a_stale_claim_id_is_refused(client):
    job_id = client.create("s", {})["id"]
    claim = client.poll(ack=True)[0]["claimId"]

    with pytest.raises(errors.StaleClaim):
        client.complete(job_id, 1, claim_id="01ARZ3NDEKTSV4RRFFQ69G5FAV")
    client.complete(job_id, 1, claim_id=claim)


# --- command line and packaging ---------------------------------------------------------------


def _cli(creds, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "JOBYARD_URL": creds.url,
        "JOBYARD_TOKEN": creds.token,
        "JOBYARD_SPACE": creds.id,
    }
    return subprocess.run(
        [sys.executable, "-m", "jobyard", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_enqueues_and_reads_jobs_with_settings_from_the_environment(creds, client):
    created = _cli(
        creds, "enqueue", "--name", "cli.job", "--payload", '{"a": 1}', "--priority", "3"
    )
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]

    shown = _cli(creds, "get", job_id)
    killed = _cli(creds, "kill", job_id, "--reason", "done with it")
    again = _cli(creds, "kill", job_id)

    assert json.loads(shown.stdout)["payload"] == {"a": 1}
    assert client.get(job_id)["priority"] == 3
    assert killed.returncode == 0
    assert again.returncode == 1
    assert json.loads(again.stderr.strip().splitlines()[-1])["code"] == "job_killed"


def test_the_cli_refuses_bad_arguments(creds):
    bad_json = _cli(creds, "enqueue", "--name", "x", "--payload", "{nope")
    bad_function = _cli(creds, "worker", "no_such_module_here:run")

    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    assert bad_function.returncode == 2 and "cannot import" in bad_function.stderr


def test_the_package_imports_without_django():
    code = (
        "import sys, jobyard, jobyard.worker, jobyard.push, jobyard.__main__;"
        "assert 'django' not in sys.modules, 'django imported'"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True)

    assert result.returncode == 0, result.stderr
