"""Error answers become typed exceptions carrying status, code and message (fake server)."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from jobyard import Client, errors


@pytest.fixture
def client(httpserver) -> Client:
    # retries=0: each test looks at one answer (retries: client/tests/test_retries.py)
    return Client(httpserver.url_for("/"), "emit_test", "space1", timeout=5, retries=0)


def _error(httpserver, method: str, path: str, status: int, body: dict, headers=None) -> None:
    httpserver.expect_request(path, method=method).respond_with_json(
        body, status=status, headers=headers
    )


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "validation_error", errors.ValidationError),
        (401, "invalid_api_key", errors.AuthError),
        (403, "permission_denied", errors.ScopeError),
        (404, "not_found", errors.NotFound),
        (409, "invalid_transition", errors.InvalidTransition),
        (409, "stale_claim", errors.StaleClaim),
        (409, "job_killed", errors.JobKilled),
        (409, "something_new", errors.Conflict),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (415, "unsupported_media_type", errors.UnsupportedMediaType),
        (500, "server_error", errors.ServerError),
        (503, "unavailable", errors.ServerError),
    ],
)
def test_it_maps_each_error_status_to_a_typed_exception(httpserver, client, status, code, cls):
    _error(httpserver, "GET", "/api/v1/jobs/j1", status, {"error": "Nope", "code": code})

    with pytest.raises(cls) as info:
        client.get("j1")

    assert info.value.status == status
    assert info.value.code == code
    assert info.value.message == "Nope"
    assert isinstance(info.value, errors.JobyardError)


def test_it_keeps_validation_details(httpserver, client):
    details = {"name": ["This field is required."]}
    _error(
        httpserver,
        "POST",
        "/api/v1/spaces/space1/jobs",
        400,
        {"error": "Validation failed", "code": "validation_error", "details": details},
    )

    with pytest.raises(errors.ValidationError) as info:
        client.create("x")

    assert info.value.details == details
    assert "name" in str(info.value)


def test_it_keeps_the_missing_scope_message(httpserver, client):
    _error(
        httpserver,
        "POST",
        "/api/v1/jobs/j1/kill",
        403,
        {"error": "Missing required scope: jobs:kill", "code": "permission_denied"},
    )

    with pytest.raises(errors.ScopeError, match="Missing required scope: jobs:kill"):
        client.kill("j1")


def test_a_rate_limit_carries_retry_after(httpserver, client):
    _error(
        httpserver,
        "GET",
        "/api/v1/jobs/j1",
        429,
        {"error": "Rate limited", "code": "rate_limited"},
        headers={"Retry-After": "3"},
    )

    with pytest.raises(errors.RateLimited) as info:
        client.get("j1")

    assert info.value.retry_after == 3.0
    assert info.value.status == 429


def test_a_non_json_error_page_is_a_server_error(httpserver, client):
    httpserver.expect_request("/api/v1/jobs/j1").respond_with_data(
        "<html>Bad gateway</html>", status=502, content_type="text/html"
    )

    with pytest.raises(errors.ServerError) as info:
        client.get("j1")

    assert info.value.status == 502
    assert info.value.code is None


def test_an_unreachable_server_raises_unreachable():
    client = Client("http://127.0.0.1:9", "emit_test", "s", timeout=2, retries=0)

    with pytest.raises(errors.Unreachable):
        client.get("j1")


def test_it_sends_the_key_and_claim_id(httpserver, client):
    httpserver.expect_request(
        "/api/v1/jobs/j1/complete",
        method="POST",
        headers={"Authorization": "Bearer emit_test", "X-Claim-Id": "c1"},
        json={"result": {"ok": True}},
    ).respond_with_json({"id": "j1", "status": "completed"})

    assert client.complete("j1", {"ok": True}, claim_id="c1")["status"] == "completed"


def test_it_sends_job_fields_in_api_spelling(httpserver, client):
    httpserver.expect_request(
        "/api/v1/spaces/space1/jobs",
        method="POST",
        json={
            "name": "email.send",
            "payload": {"to": "a@example.com"},
            "maxRetries": 5,
            "timeoutSeconds": 60,
            "priority": 10,
            "idempotencyKey": "k1",
        },
    ).respond_with_json({"id": "j1", "status": "pending"}, status=201)

    job = client.create(
        "email.send",
        {"to": "a@example.com"},
        max_retries=5,
        timeout_seconds=60,
        priority=10,
        idempotency_key="k1",
    )

    assert job["id"] == "j1"


def test_it_sends_logs_as_ndjson(httpserver, client):
    seen = {}

    def handler(request):
        seen["type"] = request.headers["Content-Type"]
        seen["lines"] = [json.loads(line) for line in request.get_data().splitlines()]
        return Response(json.dumps({"accepted": 2}), status=202, content_type="application/json")

    httpserver.expect_request("/api/v1/jobs/j1/logs", method="POST").respond_with_handler(handler)

    answer = client.send_logs(
        "j1", [{"level": "info", "message": "a"}, {"level": "warn", "message": "b", "n": 1}]
    )

    assert answer == {"accepted": 2}
    assert seen["type"] == "application/x-ndjson"
    assert seen["lines"][1] == {"level": "warn", "message": "b", "n": 1}


def test_iter_jobs_follows_next_cursor(httpserver, client):
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="limit=2"
    ).respond_with_json({"jobs": [{"id": "4"}, {"id": "3"}], "nextCursor": "c2"})
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="limit=2&cursor=c2"
    ).respond_with_json({"jobs": [{"id": "2"}], "nextCursor": None})

    ids = [job["id"] for job in client.iter_jobs(page_size=2)]

    assert ids == ["4", "3", "2"]


def test_a_client_needs_a_url_and_a_token(monkeypatch):
    monkeypatch.delenv("JOBYARD_URL", raising=False)
    monkeypatch.delenv("JOBYARD_TOKEN", raising=False)

    with pytest.raises(ValueError, match="JOBYARD_URL"):
        Client(token="emit_x")
    with pytest.raises(ValueError, match="JOBYARD_TOKEN"):
        Client("http://localhost:8000")


def test_it_reads_url_space_and_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("JOBYARD_URL", "http://example.test/api/v1/")
    monkeypatch.setenv("JOBYARD_TOKEN", "emit_env")
    monkeypatch.setenv("JOBYARD_SPACE", "sp")

    client = Client()

    assert client.api_url == "http://example.test/api/v1"
    assert client.space == "sp"
    assert client.realtime_url("j1") == "ws://example.test/api/v1/realtime/j1?token=emit_env"
