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
        url + "?token=query-secret-value",
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
    # django.request logs 4xx with the request object, whose repr has the full URL.
    caplog.set_level(logging.DEBUG)
    space = SpaceFactory()

    client.get(
        f"/api/v1/spaces/{space.public_id}/jobs?token=query-secret-value",
        HTTP_X_API_KEY="x-api-key-value-xyz",
    )
    client.get("/no/such/page?token=query-secret-value")

    warnings = [r for r in caplog.records if r.name == "django.request"]
    assert len(warnings) == 2
    for record in caplog.records:
        line = JsonFormatter().format(record)
        for secret in SECRETS:
            assert secret not in line
    assert json.loads(JsonFormatter().format(warnings[1]))["request"] == "GET /no/such/page"


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
