"""Transient failures are retried by urllib3's Retry, and only where a repeat is safe."""

from __future__ import annotations

import pytest
from werkzeug import Response

from jobyard import Client, errors
from jobyard.retry import make_retry

JOB = {"id": "j1", "spaceId": "space1", "status": "pending", "realtimeUrl": "ws://x/j1"}


def _bodies(httpserver):
    return [request.get_json() for request, _ in httpserver.log]


def test_a_503_then_a_200_is_retried_and_answers_the_200(httpserver, client, waits):
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {"error": "Unavailable", "code": "unavailable"}, status=503
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json({"id": "j1"})

    assert client.get("j1") == {"id": "j1"}

    assert len(httpserver.log) == 2
    assert len(waits) <= 1  # urllib3 retries the first failure at once


def test_the_waits_grow_with_jitter_up_to_the_cap(httpserver, waits):
    for _ in range(5):
        httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_data("", status=502)
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json({"id": "j1"})
    client = Client(httpserver.url_for("/"), "emit_test", "s", retries=5, backoff_factor=1)

    assert client.get("j1")["id"] == "j1"

    # urllib3: no wait before the first retry, then factor * 2**(n-1) plus up to 0.5 s.
    assert len(waits) == 4
    for wait, base in zip(waits, [2, 4, 8, 16], strict=True):
        assert base <= wait <= base + 0.5
    client.close()


def test_a_429_waits_for_retry_after_then_retries(httpserver, client, waits):
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {"error": "Rate limited", "code": "rate_limited"}, status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json({"id": "j1"})

    assert client.get("j1") == {"id": "j1"}

    assert waits == [7]


def test_a_long_retry_after_is_capped(httpserver, waits):
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {"error": "Rate limited"}, status=429, headers={"Retry-After": "3600"}
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json({"id": "j1"})
    client = Client(httpserver.url_for("/"), "emit_test", "s", retry_after_max=30)

    client.get("j1")

    assert waits == [30]
    client.close()


def test_when_the_retries_run_out_the_last_answer_is_the_error(httpserver, waits):
    httpserver.expect_request("/api/v1/jobs/j1").respond_with_json(
        {"error": "Unavailable", "code": "unavailable"}, status=503
    )
    client = Client(httpserver.url_for("/"), "emit_test", "s", retries=2)

    with pytest.raises(errors.ServerError) as info:
        client.get("j1")

    assert info.value.status == 503 and info.value.code == "unavailable"
    assert len(httpserver.log) == 3
    client.close()


def test_retries_zero_turns_them_off(httpserver, waits):
    httpserver.expect_request("/api/v1/jobs/j1").respond_with_data("", status=503)
    client = Client(httpserver.url_for("/"), "emit_test", "s", retries=0)

    with pytest.raises(errors.ServerError):
        client.get("j1")

    assert len(httpserver.log) == 1
    assert waits == []


def test_a_retried_create_sends_the_same_idempotency_key(httpserver, client):
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", method="POST"
    ).respond_with_json({"error": "Bad gateway"}, status=502)
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", method="POST"
    ).respond_with_json(JOB, status=201)

    assert client.create("email.send", {"to": "a"})["id"] == "j1"

    first, second = _bodies(httpserver)
    assert first == second
    assert first["idempotencyKey"].startswith("jobyard-") and len(first["idempotencyKey"]) > 20


def test_each_create_has_a_key_of_its_own_and_a_given_key_is_kept(httpserver, client):
    httpserver.expect_request("/api/v1/spaces/space1/jobs", method="POST").respond_with_json(
        JOB, status=201
    )

    client.create("a")
    client.create("b")
    client.create("c", idempotency_key="welcome-42")

    keys = [body["idempotencyKey"] for body in _bodies(httpserver)]
    assert keys[0] != keys[1]
    assert keys[2] == "welcome-42"


def test_a_create_whose_connection_was_reset_is_sent_again_with_its_key(flaky, waits):
    server = flaky("reset", (201, JOB))
    client = Client(server.url, "emit_test", "space1")

    assert client.create("email.send")["id"] == "j1"

    first, second = server.received
    assert first.path == second.path == "/api/v1/spaces/space1/jobs"
    assert first.json()["idempotencyKey"] == second.json()["idempotencyKey"]
    client.close()


def test_a_batch_create_gives_every_job_a_key_and_keeps_given_ones(httpserver, client):
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", method="POST"
    ).respond_with_data("", status=503)
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", method="POST"
    ).respond_with_json([JOB, JOB], status=201)

    client.create_many([{"name": "a"}, {"name": "b", "idempotency_key": "mine"}])

    first, second = _bodies(httpserver)
    assert first == second
    assert first[0]["idempotencyKey"].startswith("jobyard-")
    assert first[1]["idempotencyKey"] == "mine"


@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("/api/v1/jobs/j1/complete", lambda c: c.complete("j1", {"ok": True}, claim_id="c1")),
        ("/api/v1/jobs/j1/fail", lambda c: c.fail("j1", "boom", claim_id="c1")),
        ("/api/v1/jobs/j1/ack", lambda c: c.ack("j1", claim_id="c1")),
        ("/api/v1/jobs/j1/claim", lambda c: c.claim("j1")),
        ("/api/v1/spaces/space1/jobs/poll", lambda c: c.poll()),
        ("/api/v1/jobs/j1/kill", lambda c: c.kill("j1")),
        ("/api/v1/jobs/j1/retry", lambda c: c.retry("j1")),
    ],
)
def test_a_post_that_is_not_safe_to_repeat_is_not_retried_after_a_503(
    httpserver, client, path, call
):
    httpserver.expect_request(path, method="POST").respond_with_json(
        {"error": "Unavailable", "code": "unavailable"}, status=503
    )

    with pytest.raises(errors.ServerError):
        call(client)

    assert len(httpserver.log) == 1


def test_a_complete_whose_connection_was_reset_is_not_sent_twice(flaky, waits):
    server = flaky("reset", (200, {"id": "j1", "status": "completed"}))
    client = Client(server.url, "emit_test", "space1")

    with pytest.raises(errors.Unreachable):
        client.complete("j1", None, claim_id="c1")

    assert len(server.received) == 1
    client.close()


def test_a_keepalive_is_safe_to_repeat_and_is_retried(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/jobs/j1/keepalive", method="POST").respond_with_data(
        "", status=504
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1/keepalive", method="POST").respond_with_json(
        {"id": "j1", "status": "running"}
    )

    assert client.keepalive("j1", claim_id="c1")["status"] == "running"
    assert len(httpserver.log) == 2


def test_a_refused_connection_is_retried_for_any_call(waits):
    # Nothing reached the server, so even a complete may be tried again.
    client = Client("http://127.0.0.1:9", "emit_test", "s", retries=3)

    with pytest.raises(errors.Unreachable):
        client.complete("j1", None, claim_id="c1")

    assert len(waits) == 2  # three retries, the first one at once
    client.close()


def test_the_policy_is_urllib3_retry_with_jitter():
    retry = make_retry(3)

    assert retry.backoff_jitter > 0
    assert {429, 502, 503, 504} <= set(retry.status_forcelist)
    assert "POST" not in retry.allowed_methods
    assert "POST" in make_retry(3, methods={"GET", "POST"}).allowed_methods


def test_a_session_of_your_own_is_used_as_given(httpserver):
    import requests

    session = requests.Session()
    httpserver.expect_request("/api/v1/jobs/j1").respond_with_response(Response("{}", 503))
    client = Client(httpserver.url_for("/"), "emit_test", "s", session=session)

    with pytest.raises(errors.ServerError):
        client.get("j1")

    assert len(httpserver.log) == 1  # requests' default: no retries
    assert session.headers["Authorization"] == "Bearer emit_test"
