"""The real path once, end to end: a job created in one process, the notification published
to the broker on commit, a real `celery -A config worker` process sending it.

The broker is Redis when REDIS_URL is set, else the embedded default's filesystem broker in
a temporary VAR_DIR; the database is the test database on PostgreSQL, else a fresh SQLite
file in that VAR_DIR.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
POLL_INTERVAL = 0.2
WAIT_SECONDS = 90

CREATE_SCRIPT = """
import json
from orgs.models import Organization
from spaces.models import Space
from notifications.models import SpaceChannels
from jobs import services
org = Organization.objects.create(name="E2E {tag}", slug="e2e-{tag}")
space = Space.create(org, "e2e")
channels = SpaceChannels.objects.create(space=space, push_url={url!r})
job, _ = services.create_job(space, {{"name": "e2e.wake"}})
print(json.dumps({{"job": job.id, "space": space.public_id, "secret": channels.push_secret}}))
"""


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        VAR_DIR=str(var_dir),
        OUTBOUND_ALLOW_PRIVATE="1",
        DEBUG="0",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="INFO",
    )
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        env["DATABASE_URL"] = (
            f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _delivery_rows(var_dir: Path, job_id: str) -> list[tuple]:
    query = (
        "SELECT channel, event, success, status_code, target_host "
        "FROM notifications_notificationdelivery WHERE job_id = %s"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(query, [job_id])
            return cursor.fetchall()
    db = sqlite3.connect(var_dir / "db.sqlite3", timeout=5)
    try:
        return db.execute(query.replace("%s", "?"), [job_id]).fetchall()
    finally:
        db.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_a_real_worker_sends_the_push_and_records_the_delivery(tmp_path, httpserver):
    httpserver.expect_request("/wake", method="POST").respond_with_data("ok")
    env = _env(tmp_path)
    if connection.vendor != "postgresql":
        _manage(env, "migrate", "--noinput")

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"e2e-{uuid.uuid4().hex[:8]}@%h",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # given a job created in another process (the publish happens on its commit)
        script = CREATE_SCRIPT.format(tag=uuid.uuid4().hex[:8], url=httpserver.url_for("/wake"))
        out = _manage(env, "shell", "-c", script)
        created = json.loads(out.strip().splitlines()[-1])

        # then the worker delivers it: poll the receiver and the database, bounded
        deadline = time.monotonic() + WAIT_SECONDS
        rows: list[tuple] = []
        while time.monotonic() < deadline and worker.poll() is None:
            rows = _delivery_rows(tmp_path, created["job"])
            if rows:
                break
            time.sleep(POLL_INTERVAL)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            log, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            log, _ = worker.communicate()

    assert rows == [("push", "job.pending", True, 200, "localhost")] or rows == [
        ("push", "job.pending", 1, 200, "localhost")
    ], log[-4000:]
    (request, _) = httpserver.log[0]
    body = json.loads(request.data)
    assert body["type"] == "job.pending" and body["jobId"] == created["job"]
    assert body["spaceId"] == created["space"]
    digest = hmac.new(created["secret"].encode(), request.get_data(), hashlib.sha256)
    assert request.headers["X-Jobyard-Signature"] == f"sha256={digest.hexdigest()}"
    assert "notifications.tasks.deliver" in log
