"""The dashboard in a real browser, against a live server: from sign-up to a job completed by a
worker, watched live, and both notification forms saved. Saves screenshots of the main pages
(into docs/screenshots/, which the README shows, when run by `make screenshots`)."""

from __future__ import annotations

import re

import pytest
import requests

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


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


def test_an_operator_runs_a_space_from_the_browser(page, server):
    from playwright.sync_api import expect

    # the project serves its own static files (no CDN, no collectstatic step)
    for path in ("/static/css/app.css", "/static/js/app.js"):
        assert requests.get(server.url + path, timeout=5).status_code == 200

    # sign up
    page.goto("/accounts/signup/")
    page.fill("#id_username", "olivia")
    page.fill("#id_email", "olivia@example.com")
    page.fill("#id_password1", "correct-horse-battery-9")
    page.fill("#id_password2", "correct-horse-battery-9")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("New organization")

    # create an organization and a space
    page.fill("#id_name", "Acme Robotics")
    page.click("button:has-text('Create organization')")
    expect(page.locator("h1")).to_have_text("Spaces")
    page.fill("#id_name", "video-encoding")
    page.click("button:has-text('Create space')")
    expect(page.locator(".crumbs")).to_contain_text("video-encoding")
    space_id = page.locator("[data-jobs-table]").get_attribute("data-space-id")
    assert space_id

    # create a token with the Worker preset plus jobs:create; the key is shown once
    page.click("a.tab:has-text('Tokens')")
    page.fill("#id_name", "encoder fleet")
    page.check("input[name=worker_preset]")
    expect(page.locator("input[name=scopes][value='jobs:worker']")).to_be_checked()
    page.check("input[name=scopes][value='jobs:create']")
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").inner_text().strip()
    assert re.fullmatch(r"emit_[A-Za-z0-9_-]{43}", token)
    expect(page.locator("[data-new-key]")).to_contain_text("shown only this once")
    shot(page, "tokens")
    page.reload()
    expect(page.locator("table")).to_contain_text("encoder fleet")
    assert token not in page.content()

    # the jobs page, live: a job created through the API appears without a reload
    page.click("a.tab:has-text('Jobs')")
    expect(page.locator("[data-stream-state]")).to_have_class(re.compile("is-live"))
    created = api(
        server,
        token,
        "POST",
        f"/spaces/{space_id}/jobs",
        {"name": "video.encode", "payload": {"file": "talk.mp4", "preset": "1080p"}},
    )
    job_id = created["id"]
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-field=status]")).to_have_text("pending")
    for n in range(3):
        api(
            server,
            token,
            "POST",
            f"/spaces/{space_id}/jobs",
            {"name": "thumbnail.make", "payload": {"n": n}},
        )
    expect(page.locator("tbody tr")).to_have_count(4)
    expect(page.locator("[data-count=pending]").first).to_have_text("4")

    # a worker claims it, reports progress and completes it: the row follows along
    polled = api(
        server, token, "POST", f"/spaces/{space_id}/jobs/poll", {"count": 1, "name": "video.encode"}
    )
    assert [j["id"] for j in polled["jobs"]] == [job_id]
    expect(row.locator("[data-field=status]")).to_have_text("delivered")
    api(server, token, "POST", f"/jobs/{job_id}/ack")
    expect(row.locator("[data-field=status]")).to_have_text("running")
    api(
        server,
        token,
        "POST",
        f"/jobs/{job_id}/progress",
        {
            "percent": 60,
            "message": "encoding",
            "subProgress": {"audio": {"percent": 100, "message": "done"}, "video": {"percent": 45}},
        },
    )
    expect(row.locator("[data-field=progress] .bar span")).to_have_attribute(
        "style", re.compile("60")
    )
    shot(page, "jobs")

    # the job page, live too: progress stages, logs tailing, then completion
    row.locator("a.job-link").click()
    expect(page.locator("[data-job-status]")).to_have_text("running")
    expect(page.locator(".stage")).to_have_count(2)
    api(
        server,
        token,
        "POST",
        f"/jobs/{job_id}/logs",
        [
            {"level": "info", "message": "probing input"},
            {"level": "warn", "message": "variable frame rate detected"},
        ],
    )
    expect(page.locator("[data-log-view]")).to_contain_text("variable frame rate detected")
    api(
        server,
        token,
        "POST",
        f"/jobs/{job_id}/complete",
        {"result": {"url": "s3://out/talk-1080p.mp4"}},
    )
    expect(page.locator("[data-job-status]")).to_have_text("completed")
    expect(page.locator("#job-live")).to_contain_text("talk-1080p.mp4")
    shot(page, "job")
    page.go_back()
    page.reload()
    expect(page.locator(f"tr[data-job-id='{job_id}'] [data-field=status]")).to_have_text(
        "completed"
    )

    # settings: both forms, each saved by its own button
    page.click("a.tab:has-text('Settings')")
    page.fill("#id_slack_webhook_url", "https://hooks.slack.com/services/T000/B000/XXXXXXXX")
    page.check("input[name=slack_events][value=dead]")
    page.check("input[name=slack_events][value=failed]")
    page.click("button:has-text('Save Slack settings')")
    expect(page.locator(".flash-success")).to_have_text("Slack settings saved.")
    expect(page.locator("input[name=slack_events][value=dead]")).to_be_checked()
    page.fill("#id_push_url", "https://workers.example.com/wake")
    page.fill("#id_push_headers", "Authorization: Bearer wake-up-token")
    page.fill("#id_push_names", "video.encode")
    page.click("button:has-text('Save push settings')")
    expect(page.locator(".flash-success")).to_have_text("HTTP push settings saved.")
    expect(page.locator("#id_push_names")).to_have_value("video.encode")
    expect(page.locator("#id_slack_webhook_url")).to_have_value(
        "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
    )
    page.fill("#id_push_headers", "Bad Header: x")
    page.click("button:has-text('Save push settings')")
    expect(page.locator("#push .error")).to_be_visible()
    page.goto(page.url.split("#")[0])
    shot(page, "settings")

    # bulk kill: select everything on the page, confirm the count, and the rows follow
    page.click("a.tab:has-text('Jobs')")
    page.check("[data-select-all]")
    expect(page.locator("[data-selected-count]")).to_have_text("4 selected")
    page.click("button:has-text('Kill selected')")
    expect(page.locator("h1")).to_have_text("Kill 3 jobs?")
    page.click("[data-bulk-confirm]")
    expect(page.locator(".flash-success")).to_have_text("Killed 3 jobs.")
    expect(page.locator("tbody [data-field=status]:text-is('killed')")).to_have_count(3)

    # the spaces list with live counts
    page.click(".topnav-link:has-text('Spaces')")
    card = page.locator(f"[data-space-id='{space_id}']")
    expect(card.locator("[data-count=completed]")).to_have_text("1")
    expect(card.locator("[data-count=killed]")).to_have_text("3")
    expect(card.locator("[data-live-dot]")).to_have_class(re.compile("is-live"))
    api(server, token, "POST", f"/spaces/{space_id}/jobs", {"name": "thumbnail.make"})
    expect(card.locator("[data-count=pending]")).to_have_text("1")
    shot(page, "spaces")


def test_the_jobs_page_works_on_a_phone(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=server.url, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    page.goto("/accounts/signup/")
    page.fill("#id_username", "pat")
    page.fill("#id_email", "pat@example.com")
    page.fill("#id_password1", "correct-horse-battery-9")
    page.fill("#id_password2", "correct-horse-battery-9")
    page.click("button[type=submit]")
    page.fill("#id_name", "Pat's Shop")
    page.click("button:has-text('Create organization')")
    page.fill("#id_name", "orders")
    page.click("button:has-text('Create space')")
    expect(page.locator("[data-jobs-table]")).to_be_visible()
    # nothing overflows the viewport sideways except inside the scrollable table wrapper
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    shot(page, "jobs-phone")
    context.close()
