from __future__ import annotations

import json

import pytest

from jobs.models import JobEvent
from notifications.models import NotificationDelivery, PendingNotification


@pytest.fixture
def cb_space(nspace):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.push_url = ""
    nspace.channels.save()
    return nspace


def callbacks(httpserver) -> list:
    return [req for req, _ in httpserver.log if req.path == "/cb"]


def job_with_callback(engine, space, httpserver, **fields):
    return engine.create(
        space,
        name="report.build",
        callback_url=httpserver.url_for("/cb"),
        callback_headers={"Authorization": "Bearer cb-secret"},
        **fields,
    )


def test_completed_posts_the_result_with_the_job_headers(cb_space, engine, httpserver):
    httpserver.expect_request("/cb", method="POST").respond_with_data("", status=204)
    job = job_with_callback(engine, cb_space, httpserver)

    engine.complete(engine.start(engine.deliver(job)), {"rows": 3})

    (req,) = callbacks(httpserver)
    body = json.loads(req.data)
    assert body == {
        "jobId": job.id,
        "spaceId": cb_space.public_id,
        "name": "report.build",
        "status": "completed",
        "attemptNumber": 0,
        "result": {"rows": 3},
        "timestamp": body["timestamp"],
    }
    assert req.headers["Authorization"] == "Bearer cb-secret"
    assert req.headers["X-Jobyard-Signature"].startswith("sha256=")
    (event,) = JobEvent.objects.filter(job=job, type="callback_sent")
    assert event.data == {
        "url": httpserver.url_for("/cb"),
        "statusCode": 204,
        "retryAttempt": 0,
        "willRetry": False,
        "responseBody": None,
    }
    assert event.status == "completed" and event.previous_status is None


def test_dead_and_killed_carry_error_and_reason(cb_space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("ok")
    dead = job_with_callback(engine, cb_space, httpserver, max_retries=0)
    engine.fail(engine.start(engine.deliver(dead)), "out of memory")
    killed = job_with_callback(engine, cb_space, httpserver)
    engine.kill(killed, "duplicate")

    bodies = [json.loads(r.data) for r in callbacks(httpserver)]
    assert [(b["jobId"], b["status"], b["result"]) for b in bodies] == [
        (dead.id, "dead", {"error": "out of memory"}),
        (killed.id, "killed", {"reason": "duplicate"}),
    ]


def test_no_callback_for_other_events_or_without_a_url(cb_space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("ok")
    job = job_with_callback(engine, cb_space, httpserver, max_retries=2)
    engine.fail(engine.start(engine.deliver(job)))  # retried: not final
    plain = engine.create(cb_space)
    engine.complete(engine.start(engine.deliver(plain)))

    assert callbacks(httpserver) == []


def test_it_retries_until_a_2xx_and_records_each_attempt(cb_space, engine, httpserver):
    httpserver.expect_oneshot_request("/cb").respond_with_data("", status=500)
    httpserver.expect_oneshot_request("/cb").respond_with_data("", status=503)
    httpserver.expect_oneshot_request("/cb").respond_with_data("ok")
    job = job_with_callback(engine, cb_space, httpserver)

    engine.complete(engine.start(engine.deliver(job)))

    types = list(
        JobEvent.objects.filter(job=job, type__startswith="callback_")
        .order_by("id")
        .values_list("type", "data__retryAttempt", "data__statusCode", "data__willRetry")
    )
    assert types == [
        ("callback_failed", 0, 500, True),
        ("callback_failed", 1, 503, True),
        ("callback_sent", 2, 200, False),
    ]
    sent = JobEvent.objects.get(job=job, type="callback_sent")
    assert sent.data["responseBody"] == "ok"
    job.refresh_from_db()
    assert job.status == "completed"
    assert not PendingNotification.objects.exists()


def test_it_stops_after_five_attempts(cb_space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("", status=500)
    job = job_with_callback(engine, cb_space, httpserver)

    engine.kill(job)

    assert len(callbacks(httpserver)) == 5
    assert JobEvent.objects.filter(job=job, type="callback_failed").count() == 5
    rows = NotificationDelivery.objects.filter(channel="callback").order_by("id")
    assert [r.attempt for r in rows] == [1, 2, 3, 4, 5]
    assert not PendingNotification.objects.exists()


def test_a_4xx_is_not_retried(cb_space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("gone", status=410)
    job = job_with_callback(engine, cb_space, httpserver)

    engine.kill(job)

    (event,) = JobEvent.objects.filter(job=job, type__startswith="callback_")
    assert event.type == "callback_failed" and event.data["error"] == "HTTP 410: gone"


def test_a_connection_failure_is_a_failed_attempt_without_the_url(cb_space, engine):
    job = engine.create(
        cb_space, callback_url="http://127.0.0.1:9/secret-path?token=abc", max_retries=0
    )
    engine.kill(job)

    events = JobEvent.objects.filter(job=job, type="callback_failed")
    # The refused connection opened the endpoint's breaker: the next attempts wait in the
    # outbox for the cool-down instead of following at once (test_breaker.py).
    assert events.count() == 1
    assert PendingNotification.objects.filter(job=job, channel="callback").exists()
    for event in events:
        # The query's values are redacted; the path stays, as the job's own callbackUrl shows.
        assert event.data["url"] == "http://127.0.0.1:9/secret-path?token=redacted"
        assert event.data["statusCode"] is None and event.data["responseBody"] is None
        assert event.data["willRetry"] is True and "abc" not in json.dumps(event.data)
