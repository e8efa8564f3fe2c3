"""Every dashboard page at 1440x900 and at 390 px, in real Chromium against a live server:
nothing overflows sideways, the counts of what must be on screen, the job page telling what
happened, and the jobs list staying live while a search is active.

One space is filled once for the module through the API (jobs, a job with 60 progress reports,
a job that failed with a traceback and then with a structured error, a schedule, a limit)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import requests

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "worker.py", line 12, in run\n'
    '    encode(job["file"])\n'
    'ValueError: bad "codec"'
)


@dataclass
class Site:
    space_id: str
    org_slug: str
    token: str
    failed_job: str
    chatty_job: str
    storage_state: dict


def api(server, token: str, method: str, path: str, json=None) -> dict:
    response = requests.request(
        method,
        f"{server.url}/api/v1{path}",
        json=json,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def claim(server, token: str, space_id: str, name: str) -> str:
    polled = api(server, token, "POST", f"/spaces/{space_id}/jobs/poll", {"count": 1, "name": name})
    [job] = polled["jobs"]
    api(server, token, "POST", f"/jobs/{job['id']}/ack")
    return job["id"]


@pytest.fixture(scope="module")
def site(browser, server) -> Site:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=server.url, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/accounts/signup/")
    page.fill("#id_username", "lena")
    page.fill("#id_email", "lena@example.com")
    page.fill("#id_password1", "correct-horse-battery-9")
    page.fill("#id_password2", "correct-horse-battery-9")
    page.click("button[type=submit]")
    page.fill("#id_name", "Northwind Logistics International")
    page.click("button:has-text('Create organization')")
    org_slug = page.url.rstrip("/").split("/")[-1]
    page.fill("#id_name", "media-pipeline")
    page.click("button:has-text('Create space')")
    space_id = page.locator("[data-jobs-table]").get_attribute("data-space-id")
    page.click("a.tab:has-text('Tokens')")
    page.fill("#id_name", "everything")
    boxes = page.locator("input[name=scopes]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").inner_text().strip()

    # 60 jobs of a few names, newest with long names and payloads
    for n in range(60):
        name = ("thumbnail.make", "video.encode.h264-1080p-with-subtitles", "mail.send")[n % 3]
        api(server, token, "POST", f"/spaces/{space_id}/jobs", {"name": name, "payload": {"n": n}})
    # one job with 60 progress reports, then done
    api(server, token, "POST", f"/spaces/{space_id}/jobs", {"name": "chatty.job"})
    chatty = claim(server, token, space_id, "chatty.job")
    for n in range(60):
        api(
            server,
            token,
            "POST",
            f"/jobs/{chatty}/progress",
            {"percent": n + 1, "message": f"step {n}"},
        )
    api(server, token, "POST", f"/jobs/{chatty}/complete", {"result": {"ok": True}})
    # one job failing twice: a traceback as text, then a structured error, then dead
    api(
        server,
        token,
        "POST",
        f"/spaces/{space_id}/jobs",
        {
            "name": "fragile.job",
            "maxRetries": 1,
            "backoff": {"type": "fixed", "delaySeconds": 0},
        },
    )
    failed = claim(server, token, space_id, "fragile.job")
    api(server, token, "POST", f"/jobs/{failed}/fail", {"error": TRACEBACK})
    claim(server, token, space_id, "fragile.job")
    api(
        server,
        token,
        "POST",
        f"/jobs/{failed}/fail",
        {
            "error": {
                "type": "TimeoutError",
                "message": "upstream took 30 s",
                "traceback": 'File "net.py", line 3\n  raise TimeoutError()',
            }
        },
    )
    api(
        server,
        token,
        "POST",
        f"/jobs/{failed}/logs",
        [
            {"level": "error", "message": "giving up", "exc": TRACEBACK},
            {"level": "error", "message": "two\nlines"},
        ],
    )
    api(
        server,
        token,
        "POST",
        f"/spaces/{space_id}/schedules",
        {
            "name": "nightly-report-for-the-finance-department",
            "cron": "0 9 * * mon-fri",
            "timezone": "America/Argentina/Buenos_Aires",
            "overlap": "skip",
            "job": {"name": "report.build.finance.nightly", "payload": {"kind": "daily"}},
        },
    )
    api(
        server,
        token,
        "PUT",
        f"/spaces/{space_id}/limits/video.encode.h264-1080p-with-subtitles",
        {"concurrency": 4, "rate": 2.5},
    )
    expect(page.locator("h1").first).to_be_visible()
    state = context.storage_state()
    context.close()
    return Site(space_id, org_slug, token, failed, chatty, state)


def pages(site: Site) -> dict[str, str]:
    space = f"/spaces/{site.space_id}"
    return {
        "spaces": f"/orgs/{site.org_slug}/",
        "members": f"/orgs/{site.org_slug}/members/",
        "invitations": "/invitations/",
        "jobs": f"{space}/",
        "job": f"{space}/jobs/{site.failed_job}",
        "chatty job": f"{space}/jobs/{site.chatty_job}",
        "schedules": f"{space}/schedules/",
        "schedule": f"{space}/schedules/nightly-report-for-the-finance-department/",
        "limits": f"{space}/limits/",
        "tokens": f"{space}/tokens/",
        "settings": f"{space}/settings/",
    }


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
    """The page's sideways overflow, and every table wider than its box."""
    return page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            tables: Array.from(document.querySelectorAll('.table-wrap, .card'))
              .filter((box) => box.querySelector('table'))
              .map((box) => ({
                what: (box.querySelector('table').getAttribute('class') || '') + ' ' +
                      (box.closest('section') || box).querySelector('h2, table')?.textContent
                        .trim().slice(0, 30),
                over: box.scrollWidth - box.clientWidth,
              }))
              .filter((t) => t.over > 1),
        })"""
    )


def test_no_page_overflows_sideways(screen, site):
    page, viewport = screen
    for name, path in pages(site).items():
        page.goto(path)
        found = overflow(page)
        assert found["page"] <= 0, f"{name} at {viewport['width']}: page scrolls sideways"
        if viewport is DESKTOP:
            assert found["tables"] == [], f"{name} at 1440: tables overflow {found['tables']}"
        # the footer links to the API docs on every page
        assert page.locator("footer a[href='/api/v1/docs']").count() == 1


def test_the_navigation_and_tabs_stay_reachable(screen, site):
    from playwright.sync_api import expect

    page, viewport = screen
    page.goto(pages(site)["jobs"])
    for label in ("Spaces", "Members"):
        link = page.locator(f".topnav a.topnav-link:has-text('{label}')")
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], label
    tabs = page.locator("nav.tabs a.tab")
    assert tabs.count() == 8  # Jobs, Schedules, Limits, Overview, Workers, Errors, Tokens, Settings
    for i in range(tabs.count()):
        expect(tabs.nth(i)).to_be_visible()
        box = tabs.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    page.locator(".topnav a.topnav-link:has-text('Members')").click()
    expect(page.locator("h1")).to_contain_text("Members")


def test_the_jobs_list_fits_the_screen(screen, site):
    page, viewport = screen
    page.goto(pages(site)["jobs"])
    rows = page.locator("[data-jobs-table] tbody tr")
    assert rows.count() == 50
    if viewport is DESKTOP:
        # density: more than 7 job rows above the fold
        above = page.evaluate(
            """() => Array.from(document.querySelectorAll('[data-jobs-table] tbody tr'))
                 .filter((r) => r.getBoundingClientRect().bottom <= window.innerHeight).length"""
        )
        assert above > 7
        # the error column, with the failed job's error on one line
        row = page.locator(f"tr[data-job-id='{site.failed_job}']")
        assert row.locator("[data-field=error]").inner_text() == "TimeoutError: upstream took 30 s"
    # status and name of every row on screen, without scrolling sideways
    for i in range(5):
        for cell in ("[data-field=status]", ".name-link"):
            box = rows.nth(i).locator(cell).bounding_box()
            assert box is not None and box["width"] > 0, cell
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], cell
    wrap = page.evaluate(
        "() => { const w = document.querySelector('[data-jobs-table]').closest('.table-wrap');"
        " return w.scrollWidth - w.clientWidth; }"
    )
    assert wrap <= 1


def test_the_job_page_tells_what_happened(screen, site):
    from playwright.sync_api import expect

    page, viewport = screen
    page.goto(pages(site)["job"])
    # each failed attempt with its error, without opening anything
    attempts = page.locator("[data-attempts] .attempt")
    expect(attempts).to_have_count(2)
    first = attempts.nth(0)
    expect(first.locator(".attempt-head")).to_contain_text("Attempt 1/2")
    traceback = first.locator("pre")
    expect(traceback).to_be_visible()
    # the traceback keeps its lines and quotes: not one line of escaped \n and \"
    text = traceback.inner_text()
    assert text == TRACEBACK
    second = attempts.nth(1)
    expect(second.locator(".error-head")).to_have_text("TimeoutError: upstream took 30 s")
    expect(second.locator("pre")).to_have_text('File "net.py", line 3\n  raise TimeoutError()')
    # the backoff policy in words
    backoff = page.locator("[data-backoff]").inner_text()
    assert backoff.startswith("fixed: 0 s between attempts")
    assert "{" not in backoff
    # a multi-line log attribute keeps its line breaks
    expect(page.locator(".log-attr-block")).to_contain_text('File "worker.py", line 12')
    assert page.locator(".log-attr-block").inner_text() == "exc:\n" + TRACEBACK
    expect(page.locator(".log-msg").last).to_have_text("two\nlines")
    assert "\\n" not in page.locator("[data-log-view]").inner_text()

    # sixty progress reports fold into one entry of the timeline
    page.goto(pages(site)["chatty job"])
    runs = page.locator("[data-timeline] > li")
    progress = page.locator("[data-timeline] > li[data-event-type=progress]")
    expect(progress).to_have_count(1)
    assert progress.get_attribute("data-run") == "60"
    expect(progress.locator(".tl-summary")).to_have_text("1% step 0 → 60% step 59")
    assert runs.count() <= 6  # created, delivered, started, progress ×60, completed
    # the timeline stays short (sixty entries of ~40 px each made a 4,400 px page)
    height = page.locator("[data-timeline]").bounding_box()["height"]
    assert height < 360, height


def test_the_jobs_list_stays_live_while_searching(browser, server, site):
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=server.url, viewport=DESKTOP, storage_state=site.storage_state
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(pages(site)["jobs"] + "?q=needle-42")
    expect(page.locator("[data-stream-state]")).to_have_class(re.compile("is-live"))
    expect(page.locator("[data-live-label]")).to_contain_text("new jobs matching the search")
    expect(page.locator("[data-jobs-table] tbody tr")).to_have_count(0)

    path = f"/spaces/{site.space_id}/jobs"
    hit = api(
        server, site.token, "POST", path, {"name": "search.me", "payload": {"k": "needle-42"}}
    )
    miss = api(server, site.token, "POST", path, {"name": "search.me", "payload": {"k": "hay"}})
    hit2 = api(server, site.token, "POST", path, {"name": "needle-42.by-name"})
    expect(page.locator(f"tr[data-job-id='{hit['id']}']")).to_be_visible()
    expect(page.locator(f"tr[data-job-id='{hit2['id']}']")).to_be_visible()
    expect(page.locator("[data-jobs-table] tbody tr")).to_have_count(2)
    assert page.locator(f"tr[data-job-id='{miss['id']}']").count() == 0
    context.close()


def test_live_rows_show_attempts_as_rendered_rows(browser, server, site):
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=server.url, viewport=DESKTOP, storage_state=site.storage_state
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(pages(site)["jobs"] + "?name=attempt.check")
    expect(page.locator("[data-stream-state]")).to_have_class(re.compile("is-live"))
    job = api(
        server,
        site.token,
        "POST",
        f"/spaces/{site.space_id}/jobs",
        {"name": "attempt.check", "maxRetries": 3, "backoff": {"type": "fixed", "delaySeconds": 0}},
    )
    cell = page.locator(f"tr[data-job-id='{job['id']}'] [data-field=attempt]")
    expect(cell).to_have_text("1/4")
    # a failure moves it to its second attempt, live
    claim(server, site.token, site.space_id, "attempt.check")
    api(server, site.token, "POST", f"/jobs/{job['id']}/fail", {"error": "flaky"})
    expect(cell).to_have_text("2/4")
    expect(page.locator(f"tr[data-job-id='{job['id']}'] [data-field=error]")).to_have_text("flaky")
    live = page.locator(f"tr[data-job-id='{job['id']}']").inner_text()
    page.reload()
    rendered = page.locator(f"tr[data-job-id='{job['id']}']")
    expect(rendered.locator("[data-field=attempt]")).to_have_text("2/4")
    assert rendered.inner_text() == live
    context.close()
