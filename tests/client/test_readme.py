"""The README's producer and worker, run as written against a real server."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _snippets() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python client", 1)[1].split("\n## ", 1)[0]
    producer, worker = re.findall(r"```python\n(.*?)```", section, re.S)
    return producer, worker


def test_the_readme_producer_and_worker_work_as_written(creds, client):
    producer, worker = _snippets()
    assert len(producer.strip().splitlines()) <= 12 and len(worker.strip().splitlines()) <= 12
    settings = f"TOKEN = {creds.token!r}\nSPACE = {creds.id!r}\n"
    url = '"http://localhost:8000"'
    assert url in producer and url in worker
    script = settings + worker.replace(url, repr(creds.url))

    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(settings + producer.replace(url, repr(creds.url)), {})  # noqa: S102
        deadline = time.monotonic() + 60
        while client.list(status="completed", limit=100)["jobs"].__len__() < 21:
            assert time.monotonic() < deadline, "the worker did not finish the batch"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        log, _ = process.communicate(timeout=60)

    assert out.getvalue().strip() == "completed {'sent': True}"
    assert process.returncode == 0, log.decode(errors="replace")
    assert {job["status"] for job in client.iter_jobs()} == {"completed"}
