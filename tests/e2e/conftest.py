"""A live Jobyard for browser tests: daphne in a subprocess on a free port, on its own SQLite
file and the in-memory channel layer (so HTTP and WebSockets share one process), and headless
Debian chromium driven by Playwright. Skipped cleanly when /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go to a throwaway folder unless JOBYARD_SCREENSHOTS names one: `make screenshots`
# points it at docs/screenshots/ to refresh the README's pictures; a plain test run leaves the
# work tree untouched.
SCREENSHOTS = Path(os.environ.get("JOBYARD_SCREENSHOTS") or (ROOT / "var" / "e2e-screenshots"))
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"needs {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path


def _server_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DEBUG": "0",
            "VAR_DIR": str(var_dir),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    var_dir = tmp_path_factory.mktemp("e2e-var")
    port = _free_port()
    env = _server_env(var_dir, port)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    # No collectstatic, like `make run` and the Procfile: whitenoise serves from the finders.
    log = var_dir / "daphne.log"
    daphne = Path(sys.executable).with_name("daphne")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(daphne), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    # Readiness: the login page answers. Bounded, so a broken server fails the run.
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/accounts/login/", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    else:
        process.terminate()
        raise RuntimeError(f"daphne did not start: {log.read_text()[-2000:]}")
    yield LiveServer(url=url, process=process, log=log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
