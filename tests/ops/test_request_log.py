from __future__ import annotations

import json
import logging

import pytest
from django.urls import resolve

from config.logging import JsonFormatter
from tests.factories import SpaceFactory, issue_key

pytestmark = pytest.mark.django_db

SECRETS = ("hunter2-header-value", "query-secret-value", "x-api-key-value-xyz")


def request_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jobyard.request"]


def rendered(record: logging.LogRecord) -> list[str]:
    """Every way the record can reach a log sink: the JSON line, the text line, raw fields."""
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)
    return [JsonFormatter().format(record), text, repr(vars(record))]


def test_no_key_or_header_value_reaches_any_log_line(client, caplog):
    # given: a key, custom headers and a query string carrying secrets
    caplog.set_level(logging.DEBUG)
    space = SpaceFactory()
    key = issue_key(space)
    url = f"/api/v1/spaces/{space.public_id}/jobs"

    # when: an authenticated request, and one with a bad key in X-Api-Key
    ok = client.get(
        url + "?q=query-secret-value",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_X_PUSH_SECRET="hunter2-header-value",
        HTTP_COOKIE="sessionid=hunter2-header-value",
    )
    bad = client.get(url, HTTP_X_API_KEY="x-api-key-value-xyz")

    # then
    assert ok.status_code == 200
    assert bad.status_code == 401
    assert len(request_records(caplog)) == 2
    for record in caplog.records:
        for line in rendered(record):
            assert key not in line
            assert key[len("emit_") + 10 :] not in line  # not even the secret part of the key
            for secret in SECRETS:
                assert secret not in line


def test_one_json_line_per_request_with_the_route_status_duration_and_key_prefix(client, caplog):
    caplog.set_level(logging.INFO, logger="jobyard.request")
    space = SpaceFactory()
    key = issue_key(space)
    url = f"/api/v1/spaces/{space.public_id}/jobs"

    client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}")

    [record] = request_records(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line["method"] == "GET"
    assert line["path"] == "/" + resolve(url).route
    assert "<" in line["path"]  # the template, not the space id
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["key_prefix"] == key[: len("emit_") + 10]
    assert line["space"] == space.public_id
    assert line["view"] == "jobs-api-jobs"


def test_unmatched_paths_are_logged_and_measured_without_the_path(client, caplog):
    caplog.set_level(logging.INFO, logger="jobyard.request")

    client.get("/api/v1/no/such/thing-1234")

    [record] = request_records(caplog)
    assert record.path == "(unmatched)"
    assert record.status == 404
    assert "thing-1234" not in record.getMessage()


def test_probes_are_not_logged(client, caplog):
    caplog.set_level(logging.DEBUG, logger="jobyard.request")

    client.get("/healthz")

    assert request_records(caplog) == []


@pytest.mark.django_db(transaction=True)
def test_each_transition_is_one_info_line_in_json_mode(settings, caplog):
    settings.LOG_FORMAT = "json"
    caplog.set_level(logging.INFO, logger="jobyard.transitions")
    space = SpaceFactory()
    api = _api(issue_key(space))

    created = api.post(f"/api/v1/spaces/{space.public_id}/jobs", {"name": "a"}, format="json")
    job_id = created.json()["id"]
    api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json")
    api.post(f"/api/v1/jobs/{job_id}/ack")
    api.post(f"/api/v1/jobs/{job_id}/progress", {"percent": 5, "message": "go"}, format="json")
    api.post(f"/api/v1/jobs/{job_id}/complete", {}, format="json")

    lines = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.name == "jobyard.transitions"
    ]
    # progress is an event but not a transition: no line for it
    assert [(x["transition"], x["from_status"], x["status"]) for x in lines] == [
        ("created", None, "pending"),
        ("delivered", "pending", "delivered"),
        ("started", "delivered", "running"),
        ("completed", "running", "completed"),
    ]
    assert {x["space"] for x in lines} == {space.public_id}
    assert {x["job_id"] for x in lines} == {job_id}
    assert all(x["level"] == "INFO" for x in lines)
    assert isinstance(lines[-1]["duration_ms"], int)


@pytest.mark.django_db(transaction=True)
def test_transitions_are_debug_lines_on_the_readable_default(settings, caplog):
    settings.LOG_FORMAT = "text"
    caplog.set_level(logging.INFO, logger="jobyard.transitions")
    space = SpaceFactory()

    _api(issue_key(space)).post(
        f"/api/v1/spaces/{space.public_id}/jobs", {"name": "a"}, format="json"
    )

    assert [r for r in caplog.records if r.name == "jobyard.transitions"] == []


def _api(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_static_files_share_one_route_label(client, caplog, settings):
    caplog.set_level(logging.INFO, logger="jobyard.request")

    client.get(settings.STATIC_URL + "no-such-file-8812.css")

    [record] = request_records(caplog)
    assert record.path == settings.STATIC_URL + "*"


def test_djangos_own_request_warnings_carry_no_query_string(client, caplog):
    # django.request logs 4xx with the request object, whose repr has the full URL: those
    # records are dropped (the request line is the one line), and no line has the query.
    caplog.set_level(logging.DEBUG)
    space = SpaceFactory()

    client.get(
        f"/api/v1/spaces/{space.public_id}/jobs?token=query-secret-value",
        HTTP_X_API_KEY="x-api-key-value-xyz",
    )
    client.get("/no/such/page?token=query-secret-value")

    assert [r for r in caplog.records if r.name.startswith("django.")] == []
    assert [(r.status, r.code) for r in request_records(caplog)] == [
        (401, "invalid_api_key"),
        (404, "not_found"),
    ]
    for record in caplog.records:
        for line in rendered(record):
            for secret in SECRETS:
                assert secret not in line


# --- refusals are one line; server errors keep their traceback ---------------------------------


def assert_one_line_without_traceback(records: list[logging.LogRecord]) -> None:
    """No record has a traceback, and each is one line in the text and in the JSON format."""
    text_format = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for record in records:
        assert not record.exc_info and not record.exc_text and not record.stack_info, record
        text = text_format.format(record)
        as_json = JsonFormatter().format(record)
        assert "\n" not in text and "\n" not in as_json, text
        assert "exc" not in json.loads(as_json)


def _stale_claim(cast) -> tuple[str, dict]:
    """A 409: completing a delivered job with a claim id that is not its claim."""
    from jobs import services

    services.create_job(cast.space, {"name": "a"})
    [job] = services.poll_jobs(cast.space)
    return f"/api/v1/jobs/{job.pk}/complete", {"HTTP_X_CLAIM_ID": "stale-claim-id"}


def _refusal(cast, case: str):
    """(response, method, route, status, code) of each refusal under test."""
    from django.test import Client
    from rest_framework.test import APIClient

    from spaces import scopes

    space = cast.space
    if case in ("api-403-missing-scope", "api-404-unknown-job", "api-409-stale-claim"):
        api = APIClient()
        scope_list = [scopes.READ_PROGRESS] if case == "api-403-missing-scope" else None
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, scope_list)}")
        if case == "api-403-missing-scope":
            url = f"/api/v1/spaces/{space.public_id}/jobs"
            return api.post(url, {"name": "a"}, format="json"), "POST", url, 403, "missing_scope"
        if case == "api-404-unknown-job":
            url = "/api/v1/jobs/01JNOSUCHJOB0000000000000"
            return api.get(url), "GET", url, 404, "not_found"
        url, headers = _stale_claim(cast)
        return api.post(url, {}, format="json", **headers), "POST", url, 409, "stale_claim"
    browser = Client()
    if case == "dashboard-403-not-a-manager":  # bob is a member, not an owner or admin
        browser.force_login(cast.bob)
        url = f"/spaces/{space.public_id}/pause/"
        return browser.post(url), "POST", url, 403, "permission_denied"
    if case == "dashboard-404-not-a-member":
        browser.force_login(cast.charlie)
        url = f"/spaces/{space.public_id}/"
        return browser.get(url), "GET", url, 404, "not_found"
    raise AssertionError(case)


REFUSALS = [
    "api-403-missing-scope",
    "api-404-unknown-job",
    "api-409-stale-claim",
    "dashboard-403-not-a-manager",
    "dashboard-404-not-a-member",
]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refusal_is_one_info_line_with_its_code_and_no_traceback(cast, caplog, case):
    caplog.set_level(logging.DEBUG)

    response, method, url, status, code = _refusal(cast, case)

    assert response.status_code == status
    assert_one_line_without_traceback(caplog.records)
    # Django's own record of the answer (django.request, with the PermissionDenied traceback on
    # the dashboard) is gone: the request line is the one line.
    assert [r for r in caplog.records if r.name.startswith("django.")] == []
    [line] = [r for r in request_records(caplog) if r.status == status]
    assert line.levelno == logging.INFO
    assert (line.method, line.path, line.status, line.code) == (
        method,
        "/" + resolve(url).route,
        status,
        code,
    )
    assert f" {status} {code} " in line.getMessage()
    as_json = json.loads(JsonFormatter().format(line))
    assert (as_json["method"], as_json["status"], as_json["code"]) == (method, status, code)


def test_a_host_django_refuses_is_one_warning_line(client, caplog):
    # Django logs a foreign Host header at ERROR with a traceback (django.security).
    caplog.set_level(logging.DEBUG)

    response = client.get("/api/v1/jobs/x", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert_one_line_without_traceback(caplog.records)
    assert [r for r in caplog.records if r.name.startswith("django.")] == []
    [line] = request_records(caplog)
    assert (line.levelno, line.status, line.code) == (logging.WARNING, 400, "disallowed_host")


def test_a_csrf_failure_is_one_warning_line(cast, caplog):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(cast.alice)
    caplog.set_level(logging.DEBUG)

    response = browser.post(f"/spaces/{cast.space.public_id}/pause/")

    assert response.status_code == 403
    assert_one_line_without_traceback(caplog.records)
    assert [r for r in caplog.records if r.name.startswith("django.")] == []
    [line] = request_records(caplog)
    assert (line.levelno, line.status, line.code) == (logging.WARNING, 403, "csrf_failed")


def test_a_server_error_still_logs_its_traceback(space, caplog, monkeypatch):
    from django.test import Client

    def boom(self, request, *args, **kwargs):
        raise RuntimeError("a bug in the view")

    url = "/api/v1/jobs/01JNOSUCHJOB0000000000000"
    monkeypatch.setattr(resolve(url).func.view_class, "get", boom)
    api = Client(raise_request_exception=False)
    caplog.set_level(logging.DEBUG)

    response = api.get(url, HTTP_AUTHORIZATION=f"Bearer {issue_key(space)}")

    assert response.status_code == 500
    [error] = [r for r in caplog.records if r.name == "django.request"]
    assert error.levelno == logging.ERROR
    assert error.exc_info and isinstance(error.exc_info[1], RuntimeError)
    assert "a bug in the view" in json.loads(JsonFormatter().format(error))["exc"]
    assert "Traceback" in logging.Formatter("%(message)s").format(error)
    [line] = request_records(caplog)
    assert (line.levelno, line.status, line.code) == (logging.WARNING, 500, "server_error")


def test_run_time_counts_from_delivery_when_the_ack_was_implied(settings, caplog):
    from datetime import UTC, datetime, timedelta
    from unittest import mock

    from config.metrics import on_events_committed
    from tests.factories import JobFactory

    settings.LOG_FORMAT = "json"
    caplog.set_level(logging.INFO, logger="jobyard.transitions")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    done = t0 + timedelta(seconds=5)
    job = JobFactory(status="completed", delivered_at=t0, started_at=done, completed_at=done)
    event = mock.Mock(
        type="completed", previous_status="delivered", status="completed", job=job, job_id=job.id
    )

    on_events_committed(events=[event])

    [record] = [r for r in caplog.records if r.name == "jobyard.transitions"]
    assert record.duration_ms == 5000
