"""The README's 30-line worker, run as written against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import services
from jobs.models import Job
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_worker() -> str:
    text = README.read_text()
    section = text.split("## Quick start: a worker in 30 lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quick_start_worker_is_at_most_30_lines():
    assert len(quick_start_worker().strip().splitlines()) <= 30


@pytest.mark.django_db(transaction=True)
def test_the_quick_start_worker_processes_jobs_end_to_end(live_server, tmp_path):
    space = SpaceFactory()
    token = issue_key(space, scopes.WORKER_PRESET)
    services.create_jobs(space, [{"name": "email.send", "payload": {"n": i}} for i in range(3)])
    script = tmp_path / "worker.py"
    script.write_text(quick_start_worker())
    env = os.environ | {"URL": live_server.url, "SPACE": space.public_id, "TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if Job.objects.filter(space=space, status="completed").count() == 3:
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        output = proc.communicate()[0].decode()
    assert Job.objects.filter(space=space, status="completed").count() == 3, output
    assert all(job.result == {"sent": True} for job in Job.objects.filter(space=space))
