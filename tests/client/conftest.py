"""A real Jobyard server for the client tests: daphne (and the scheduler) in subprocesses.

The client speaks HTTP and WebSockets to a server on a free port, exactly as in production,
against a database of its own: a SQLite file in a temporary folder on the embedded default, or
a dedicated PostgreSQL database (jobyard_client_test<TEST_DB_SUFFIX>) when DATABASE_URL is set.
pytest-django's live_server is not used because it serves WSGI only, and the project is ASGI
(long polls and WebSockets).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SCOPES = "jobs:worker,jobs:create,jobs:kill,jobs:retry,jobs:read"


@dataclass
class Server:
    url: str
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def log_tail(self, name: str = "web", lines: int = 60) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class SpaceCreds:
    id: str
    token: str
    push_secret: str
    url: str
    server: Server


# Spaces are made in batches by one `manage.py shell` (a Django start costs seconds; a test
# should not pay it just to get a space).
_ISSUE_SPACES = """
import json, uuid
from orgs.models import Organization
from spaces.models import ApiKey, Space
from notifications.models import SpaceChannels
org, _ = Organization.objects.get_or_create(slug="client-tests", defaults={"name": "Client tests"})
out = []
for _ in range(%(count)d):
    space = Space.create(org, "client-" + uuid.uuid4().hex[:12])
    _, token = ApiKey.issue(space, "client tests", %(scopes)r)
    secret = SpaceChannels.of(space).push_secret
    out.append({"spaceId": space.public_id, "token": token, "pushSecret": secret})
print("SPACES " + json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_database(base_url: str) -> str:
    """A fresh database for the server under test, next to the one DATABASE_URL names."""
    import psycopg

    name = f"jobyard_client_test{os.environ.get('TEST_DB_SUFFIX', '')}"
    parts = urlsplit(base_url)
    admin_dsn = urlunsplit((parts.scheme.replace("postgresql", "postgres"), *parts[1:]))
    with psycopg.connect(
        admin_dsn.replace("postgres://", "postgresql://", 1), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _drop_postgres_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


def _wait_until_up(url: str, process: subprocess.Popen, server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{server.log_tail()}")
        try:
            requests.get(url + "/api/v1/jobs/none", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"daphne did not start:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("jobyard-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "VAR_DIR": str(tmp),
            "API_RATE_LIMIT_PER_SECOND": "100000",
            "OUTBOUND_ALLOW_PRIVATE": "1",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    database_url = os.environ.get("DATABASE_URL", "")
    own_pg = None
    if database_url.startswith(("postgres://", "postgresql://")):
        own_pg = _postgres_database(database_url)
        env["DATABASE_URL"] = own_pg
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'server.sqlite3'}"

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env["PUBLIC_URL"] = url
    srv = Server(url=url, env=env, log_dir=tmp)
    srv.manage("migrate", "--noinput")

    def start(name: str, args: list[str]) -> subprocess.Popen:
        out = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        srv.processes.append(process)
        return process

    web = start(
        "web",
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
    )
    # Deadlines (keepalive tests), scheduled retries and the notification outbox.
    start("scheduler", [sys.executable, "manage.py", "run_scheduler"])
    try:
        _wait_until_up(url, web, srv)
        yield srv
    finally:
        for process in srv.processes:
            process.terminate()
        for process in srv.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if own_pg:
            _drop_postgres_database(own_pg)


@pytest.fixture(scope="session")
def _space_pool(server) -> list[dict]:
    return []


@pytest.fixture
def creds(server, _space_pool) -> SpaceCreds:
    """A fresh space of its own for each test, and a key with worker, create, kill, retry."""
    if not _space_pool:
        out = server.shell(_ISSUE_SPACES % {"count": 25, "scopes": SCOPES.split(",")})
        line = next(line for line in out.splitlines() if line.startswith("SPACES "))
        _space_pool.extend(json.loads(line.removeprefix("SPACES ")))
    data = _space_pool.pop()
    return SpaceCreds(
        id=data["spaceId"],
        token=data["token"],
        push_secret=data["pushSecret"],
        url=server.url,
        server=server,
    )


@pytest.fixture
def client(creds):
    from jobyard import Client

    with Client(creds.url, creds.token, creds.id, timeout=30) as c:
        yield c
