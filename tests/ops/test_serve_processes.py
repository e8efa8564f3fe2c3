"""`python -m config.serve` with WEB_CONCURRENCY=2: two processes serve one port, a killed one
is replaced, and SIGTERM to the parent drains both.

Several processes need a channel layer that crosses processes: these run when REDIS_URL is set.
Which process answered a request is read from the kernel (the process holding the accepted
socket), so nothing about the process is exposed over HTTP.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import threads
from tests.ops.test_graceful_stop import WebProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def web(tmp_path):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("several web processes need REDIS_URL (the in-memory layer is per process)")
    process = WebProcess(tmp_path, keep=("REDIS_URL",), WEB_CONCURRENCY="2")
    process.manage("migrate", "-v0")
    yield process
    kill_group(process)


def kill_group(web: WebProcess) -> None:
    # The parent and the children it started share the group created with the parent.
    if web.proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(web.proc.pid, signal.SIGKILL)
        web.proc.wait()


def start(web: WebProcess) -> None:
    web.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.serve",
            "-b",
            "127.0.0.1",
            "-p",
            str(web.port),
            "config.asgi:application",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=web.env,
        stdout=web.log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web.wait_for(lambda: len(children(web.proc.pid)) == 2, "two serving processes")
    web.wait_for(lambda: web.request("GET", "/healthz")[0] == 200, "server start")


def children(parent: int) -> set[int]:
    """The serving processes under `parent` (not multiprocessing's resource tracker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.add(int(entry))
    return found


def server_side_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and (
                int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def served_by(web: WebProcess, conn: http.client.HTTPConnection, pids: set[int]) -> int | None:
    inode = server_side_inode(web.port, conn.sock.getsockname()[1])
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def pids_answering(web: WebProcess, tries: int = 200) -> set[int]:
    """Opens keep-alive connections until requests were answered by two processes."""
    pids = children(web.proc.pid)
    seen: set[int] = set()
    open_conns = []
    try:
        for _ in range(tries):
            conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            open_conns.append(conn)  # held open, so the inode stays in the tables
            pid = served_by(web, conn, pids)
            if pid is not None:
                seen.add(pid)
            if len(seen) == 2:
                break
    finally:
        for conn in open_conns:
            conn.close()
    return seen


def test_two_processes_answer_on_one_port_and_a_killed_one_is_replaced(web):
    start(web)
    first = children(web.proc.pid)

    # Both children answer requests on the one port.
    assert pids_answering(web) == first

    # A killed child is replaced by a new one, which serves too.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    web.wait_for(
        lambda: len(children(web.proc.pid) - {victim}) == 2, "a replacement process", limit=90
    )
    second = children(web.proc.pid)
    assert victim not in second
    assert len(second - first) == 1
    web.wait_for(lambda: pids_answering(web, tries=50) == second, "the replacement to serve")
    assert f"web process {victim} exited" in web.log.read_text()

    # SIGTERM to the parent stops every child cleanly.
    web.proc.send_signal(signal.SIGTERM)
    assert web.proc.wait(60) == 0
    assert not children(web.proc.pid)
    assert web.log.read_text().count("stopped: no request in flight") == 2


def test_sigterm_to_the_parent_drains_every_child(web):
    issued = json.loads(web.manage("issue_token", "--space", "ops", "--json").splitlines()[-1])
    web.env["WEB_SHUTDOWN_DELAY_SECONDS"] = "3"
    start(web)

    def long_poll() -> tuple[int, bytes]:
        return web.request(
            "POST",
            f"/api/v1/spaces/{issued['spaceId']}/jobs/poll",
            body={"waitSeconds": 5},
            headers={"Authorization": f"Bearer {issued['token']}"},
        )

    pollers = [threads.spawn(long_poll) for _ in range(6)]
    web.wait_for(lambda: web.in_progress() >= 2, "the long polls to reach the application")

    web.proc.send_signal(signal.SIGTERM)
    # Each child drains: /readyz fails during the delay, whichever process answers.
    web.wait_for(lambda: web.request("GET", "/readyz")[0] == 503, "readiness to fail")
    draining = [web.request("GET", "/readyz") for _ in range(4)]
    results = threads.join_all(pollers, 60)
    code = web.proc.wait(60)

    assert code == 0
    assert results == [(200, b'{"jobs":[]}')] * 6
    assert all(status == 503 for status, _ in draining), draining
    log = web.log.read_text()
    assert log.count("stopping: serving for 3.0s more") == 2
    assert log.count("stopped: no request in flight") == 2
