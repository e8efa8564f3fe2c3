"""The API docs page (/api/v1/docs) in a real browser against a live server: Swagger UI from the
service's own files with no request leaving it, every operation listed under its resource, and
"Try it out" with a key. And the OpenAPI document that server serves, validated."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from openapi_spec_validator import validate

from .conftest import ROOT, _server_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(server) -> dict[str, str]:
    """The demo space and its token (manage.py bootstrap, on the live server's database)."""
    port = urlsplit(server.url).port
    env = _server_env(server.log.parent, port)
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "bootstrap"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    space = re.search(r"^Space:\s+\S+ \((\S+)\)", out, re.M)
    token = re.search(r"^Token:\s+(emit_\S+)", out, re.M)
    assert space and token, out
    return {"space": space[1], "token": token[1]}


def test_the_served_openapi_document_is_valid_in_json_and_yaml(server):
    as_json = requests.get(f"{server.url}/api/v1/schema?format=json", timeout=10)
    assert as_json.status_code == 200
    doc = as_json.json()
    validate(doc)
    as_yaml = requests.get(f"{server.url}/api/v1/schema", timeout=10)
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text) == doc
    ops = [op for item in doc["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ops) >= 30
    assert all(op["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}] for op in ops)


def test_api_errors_are_json_on_the_live_server(server):
    for path in ("/api/v1/", "/api/v1/nothing", "/api/v1/docs/"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not found", "code": "not_found"}
    response = requests.post(f"{server.url}/api/v1/docs", timeout=10)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_the_docs_page_tries_the_job_list_with_a_key(browser, server, demo):
    from playwright.sync_api import expect

    created = requests.post(
        f"{server.url}/api/v1/spaces/{demo['space']}/jobs",
        json={"name": "docs.page.job", "payload": {"from": "e2e"}},
        headers={"X-Api-Key": demo["token"]},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # Nothing may leave the service: any other host is refused and remembered.
    outside: list[str] = []
    own = urlsplit(server.url).netloc

    def only_ours(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_ours)
    sent: list[dict] = []
    page = context.new_page()
    page.on(
        "request",
        lambda request: sent.append(request.headers) if "/jobs?" in request.url else None,
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto("/api/v1/docs")
    expect(page).to_have_title("Jobyard API")
    expect(page.locator(".info .title")).to_contain_text("Jobyard API")
    # Every operation of the document, under the tag of its resource.
    doc = requests.get(f"{server.url}/api/v1/schema?format=json", timeout=10).json()
    count = sum(1 for item in doc["paths"].values() for op in item.values() if "operationId" in op)
    expect(page.locator(".opblock")).to_have_count(count)
    tags = page.locator(".opblock-tag-section h3 .nostyle span, .opblock-tag-section h3 a span")
    assert [t.strip() for t in tags.all_inner_texts()][:4] == [
        "jobs",
        "workers",
        "schedules",
        "limits",
    ]

    # Authorize with the key as a Bearer token.
    page.click("button.authorize")
    modal = page.locator(".modal-ux")
    expect(modal).to_contain_text("bearerAuth")
    expect(modal).to_contain_text("apiKeyHeader")
    bearer = modal.locator(".auth-container").filter(has_text="bearerAuth")
    bearer.locator("input").fill(demo["token"])
    bearer.locator("button.authorize").click()
    expect(bearer.locator("button", has_text="Logout")).to_be_visible()
    bearer.locator("button.btn-done").click()
    expect(modal).to_have_count(0)

    # Try the job list: the answer is the job just created, sent with the key.
    op = page.locator("#operations-jobs-listJobs")
    op.locator(".opblock-summary").click()
    op.locator("button.try-out__btn").click()
    op.locator("tr[data-param-name='spaceId'] input").fill(demo["space"])
    op.locator("tr[data-param-name='name'] input").fill("docs.page.job")
    op.locator("button.execute").click()
    live = op.locator(".live-responses-table")
    expect(live.locator("tbody .response .response-col_status")).to_have_text("200")
    expect(live.locator("tbody .response .response-col_description")).to_contain_text(job_id)

    assert sent and sent[-1].get("authorization") == f"Bearer {demo['token']}"
    assert outside == []
    assert errors == []
    body = json.loads(
        requests.get(
            f"{server.url}/api/v1/spaces/{demo['space']}/jobs",
            params={"name": "docs.page.job"},
            headers={"Authorization": f"Bearer {demo['token']}"},
            timeout=10,
        ).text
    )
    assert [job["id"] for job in body] == [job_id]
    context.close()
