"""The Workers, Overview and Errors tabs in real Chromium at 1440x900 and at 390 px: nothing
overflows sideways, the rows that must be there are, and the unattended-space warning shows.

One space is filled once for the module through the API: jobs of three names, two workers
(X-Worker-Id) holding some, failures with two kinds of errors; then the scheduler's rollup step
runs once against the live server's database."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.conftest import ROOT, SCREENSHOTS, _server_env

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
NAMES = ("thumbnail.make", "video.encode.h264-1080p-with-subtitles", "mail.send")


@dataclass
class Site:
    space_id: str
    org_slug: str
    storage_state: dict


def shot(page, viewport, name: str) -> None:
    """The desktop view of a tab, for the README (docs/screenshots/ under `make screenshots`)."""
    if viewport is DESKTOP:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def call(server, token, method, path, json=None, worker=None):
    headers = {"Authorization": f"Bearer {token}"}
    if worker:
        headers["X-Worker-Id"] = worker
    response = requests.request(
        method, f"{server.url}/api/v1{path}", json=json, headers=headers, timeout=10
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def roll_up(server) -> None:
    """One run of the scheduler's rollup step on the live server's database."""
    var_dir = server.log.parent
    port = server.url.rsplit(":", 1)[1]
    code = (
        "from jobs import rollups, streams; from spaces.models import Space; "
        "[streams.publish_space(s.pk) for s in Space.objects.all()]; "
        "rollups.roll_up(); rollups.roll_up()"
    )
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        env=_server_env(var_dir, int(port)),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def site(browser, server) -> Site:
    context = browser.new_context(base_url=server.url, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/accounts/signup/")
    page.fill("#id_username", "olga")
    page.fill("#id_email", "olga@example.com")
    page.fill("#id_password1", "correct-horse-battery-9")
    page.fill("#id_password2", "correct-horse-battery-9")
    page.click("button[type=submit]")
    page.fill("#id_name", "Operators Unlimited International")
    page.click("button:has-text('Create organization')")
    org_slug = page.url.rstrip("/").split("/")[-1]
    page.fill("#id_name", "render-farm")
    page.click("button:has-text('Create space')")
    space_id = page.locator("[data-jobs-table]").get_attribute("data-space-id")
    page.click("a.tab:has-text('Tokens')")
    page.fill("#id_name", "everything")
    boxes = page.locator("input[name=scopes]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").inner_text().strip()

    jobs = f"/spaces/{space_id}/jobs"
    for n in range(30):
        call(server, token, "POST", jobs, {"name": NAMES[n % 3], "payload": {"n": n}})
    worker_a = "render-node-01.eu-west.example.internal:48213"
    held = call(server, token, "POST", f"{jobs}/poll", {"count": 3}, worker=worker_a)["jobs"]
    failing = call(server, token, "POST", f"{jobs}/poll", {"count": 4}, worker="node-2:7")["jobs"]
    errors = [
        "Timeout after 30s talking to https://storage.example.com/buckets/raw/objects/123",
        "Timeout after 45s talking to https://storage.example.com/buckets/raw/objects/987",
        "KeyError: 'frame_rate' in job 01JDQ8Z4X6B2N3M4P5Q6R7S8T9",
        "KeyError: 'frame_rate' in job 01JDQ8Z4X6B2N3M4P5Q6R7S8TA",
    ]
    for job, error in zip(failing, errors, strict=True):
        call(server, token, "POST", f"/jobs/{job['id']}/fail", {"error": error, "retry": False})
    assert len(held) == 3
    roll_up(server)
    state = context.storage_state()
    context.close()
    return Site(space_id, org_slug, state)


@pytest.fixture(params=[DESKTOP, PHONE], ids=["1440", "390"])
def screen(request, browser, server, site):
    viewport = request.param
    context = browser.new_context(
        base_url=server.url,
        viewport=viewport,
        storage_state=site.storage_state,
        is_mobile=viewport is PHONE,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page, viewport
    context.close()


def overflow(page) -> dict:
    """The page's sideways overflow, and every table box wider than its width."""
    return page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            tables: Array.from(document.querySelectorAll('.table-wrap'))
              .map((box) => box.scrollWidth - box.clientWidth).filter((over) => over > 1),
        })"""
    )


def check_fits(page, viewport, what: str) -> None:
    found = overflow(page)
    assert found["page"] <= 0, f"{what} at {viewport['width']}: page scrolls sideways"
    if viewport is DESKTOP:
        assert found["tables"] == [], f"{what} at 1440: a table overflows its box"
    # every tab stays on screen (they wrap on phones)
    tabs = page.locator("nav.tabs a.tab")
    for i in range(tabs.count()):
        box = tabs.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], what


def test_the_workers_tab(screen, site):
    page, viewport = screen
    page.goto(f"/spaces/{site.space_id}/workers/")
    check_fits(page, viewport, "workers")
    rows = page.locator("[data-workers] tbody tr[data-worker]")
    assert rows.count() == 2
    node = page.locator("tr[data-worker^='render-node-01']")
    assert node.locator("[data-held]").inner_text() == "3"
    assert node.locator("a.job-link").count() == 3
    assert page.locator("a.tab.is-active").inner_text() == "Workers"
    shot(page, viewport, "workers")


def test_the_overview_tab(screen, site):
    page, viewport = screen
    page.goto(f"/spaces/{site.space_id}/overview/")
    check_fits(page, viewport, "overview")
    rows = page.locator("[data-overview] tbody tr[data-name]")
    assert rows.count() == 3
    pending = sum(int(rows.nth(i).locator("[data-pending]").inner_text()) for i in range(3))
    assert pending == 30 - 3 - 4
    shot(page, viewport, "overview")


def test_the_errors_tab(screen, site):
    page, viewport = screen
    page.goto(f"/spaces/{site.space_id}/errors/")
    check_fits(page, viewport, "errors")
    groups = page.locator("[data-errors] tbody tr[data-group]")
    assert groups.count() == 2
    assert [groups.nth(i).locator("[data-count]").inner_text() for i in range(2)] == ["2", "2"]
    assert page.locator("[data-errors] button:has-text('Retry all')").count() == 2
    assert page.locator("[data-errors] button:has-text('Kill all')").count() == 2
    shot(page, viewport, "errors")


def test_the_spaces_list_warns_of_an_unattended_space(screen, site):
    page, viewport = screen
    page.goto(f"/orgs/{site.org_slug}/")
    check_fits(page, viewport, "spaces")
    # pending jobs, and workers seen a moment ago: no warning yet
    assert page.locator("[data-idle-warning]").count() == 0


def test_a_group_retry_from_the_errors_tab(browser, server, site):
    context = browser.new_context(
        base_url=server.url, viewport=DESKTOP, storage_state=site.storage_state
    )
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/spaces/{site.space_id}/errors/")
    page.locator("[data-errors] tr[data-group]").first.locator(
        "button:has-text('Retry all')"
    ).click()
    page.wait_for_url(f"**/spaces/{site.space_id}/errors/")
    assert "Retried 2 jobs." in page.locator(".flash-list").inner_text()
    context.close()
