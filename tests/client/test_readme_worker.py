"""The README's 30-line worker, run as written against a real server.

The server is the client suite's own daphne process (tests/client/conftest.py), not
pytest-django's live_server: the worker is killed while its 20 s long poll is still being
served, and on in-memory SQLite a live_server request thread shares the test's database
connection, so that orphaned poll would run transactions under the next tests' teardown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_worker() -> str:
    text = README.read_text()
    section = text.split("## Quick start: a worker in 30 lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quick_start_worker_is_at_most_30_lines():
    assert len(quick_start_worker().strip().splitlines()) <= 30


def test_the_quick_start_worker_processes_jobs_end_to_end(creds, client, tmp_path):
    for i in range(3):
        client.create("email.send", payload={"n": i})
    script = tmp_path / "worker.py"
    script.write_text(quick_start_worker())
    env = os.environ | {"URL": creds.url, "SPACE": creds.id, "TOKEN": creds.token}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(client.list(status="completed", limit=10)["jobs"]) == 3:
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        output = proc.communicate()[0].decode()
    jobs = list(client.iter_jobs())
    assert [job["status"] for job in jobs] == ["completed"] * 3, output
    assert all(client.get(job["id"])["result"] == {"sent": True} for job in jobs)
