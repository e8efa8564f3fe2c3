"""The command line against a real server: enqueue --wait follows the real job stream, and the
job list reads the server's pages."""

from __future__ import annotations

import contextlib
import io
import json
import threading

from jobyard import PermanentFailure, Worker
from jobyard.__main__ import main
from tests import threads
from tests.client.test_worker import _until, running


def _settings(creds) -> list[str]:
    return ["--url", creds.url, "--token", creds.token, "--space", creds.id]


class Captured(io.StringIO):
    """stderr of a command run in a thread, readable while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


def _enqueue_wait(creds, name: str) -> tuple[threads.Worker, io.StringIO, Captured]:
    out, err = io.StringIO(), Captured()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(["enqueue", "--name", name, "--wait", "--timeout", "60", *_settings(creds)])

    return threads.spawn(run), out, err


def test_enqueue_wait_shows_the_jobs_progress_and_exits_0_when_it_completes(creds, client):
    go = threading.Event()

    def handle(job):
        job.progress(50, "halfway")
        go.wait(30)  # held until the command has shown the progress
        return {"ok": True}

    worker = Worker(handle, client=client, wait_seconds=1)
    with running(worker):
        command, out, err = _enqueue_wait(creds, "cli.wait")
        _until(lambda: "50% halfway" in err.text())
        go.set()
        command.join(60)

    assert command.result(0) == 0
    assert '"status": "completed"' in out.getvalue()
    assert "[###############---------------]  50% halfway" in err.text()


def test_enqueue_wait_exits_1_and_names_the_error_when_the_job_goes_dead(creds, client):
    def handle(job):
        raise PermanentFailure("the payload is unusable")

    worker = Worker(handle, client=client, wait_seconds=1)
    with running(worker):
        command, out, err = _enqueue_wait(creds, "cli.dead")
        command.join(60)

    assert command.result(0) == 1
    assert '"status": "dead"' in out.getvalue()
    assert (
        err.text()
        .splitlines()[-1]
        .endswith("dead: jobyard.errors.PermanentFailure: the payload is unusable")
    )


def test_jobs_list_pages_through_the_servers_answers(creds, client, capsys):
    created = client.create_many({"name": "cli.list", "payload": n} for n in range(5))

    code = main(["jobs", "list", "--all", "--limit", "2", "--json", *_settings(creds)])

    assert code == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(listed) == 5
    assert {job["id"] for job in created} == {json.loads(line)["id"] for line in listed}
