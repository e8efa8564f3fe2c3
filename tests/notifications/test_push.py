from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from jobs.models import Job
from notifications import outbox
from notifications.models import NotificationDelivery, PendingNotification
from spaces import services as space_services


def pushes(httpserver) -> list:
    return [req for req, _ in httpserver.log if req.path == "/push"]


def push_bodies(httpserver) -> list[dict]:
    return [json.loads(req.data) for req in pushes(httpserver)]


@pytest.fixture
def receiver(httpserver, nspace):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    httpserver.expect_request("/push", method="POST").respond_with_data("ok")
    return httpserver


def test_it_pushes_job_pending_with_headers_and_a_signature(nspace, engine, receiver):
    job = engine.create(nspace, name="thumbs.make")

    (req,) = pushes(receiver)
    body = json.loads(req.data)
    assert body["type"] == "job.pending"
    assert body["jobId"] == job.id and body["spaceId"] == nspace.public_id
    assert body["name"] == "thumbs.make"
    assert body["timestamp"].startswith(str(timezone.now().year))
    assert set(body) == {"type", "jobId", "spaceId", "name", "timestamp"}
    assert req.headers["X-Worker-Token"] == "hunter2"
    assert req.headers["User-Agent"] == "Jobyard-Notifications/1.0"
    assert req.headers["Content-Type"] == "application/json"
    expected = hmac.new(
        nspace.channels.push_secret.encode(), req.get_data(), hashlib.sha256
    ).hexdigest()
    assert req.headers["X-Jobyard-Signature"] == f"sha256={expected}"
    (row,) = NotificationDelivery.objects.filter(channel="push")
    assert row.success and row.event == "job.pending" and row.job_id == job.id


def test_it_pushes_whenever_a_job_becomes_pending(nspace, engine, receiver):
    job = engine.create(nspace, max_retries=2)  # created
    engine.deliver(job)
    engine.make_pending_again(job, "delivery_timeout")  # delivery timeout
    engine.fail(engine.start(engine.deliver(job)))  # retried, straight back to pending
    engine.fail(engine.start(engine.deliver(job)))
    engine.fail(engine.start(engine.deliver(job)))  # dead: no push
    scheduled = engine.create(nspace, status="scheduled")  # no push yet
    engine.make_pending_again(scheduled, "scheduled")  # scheduled time reached

    assert [b["jobId"] for b in push_bodies(receiver)] == [job.id] * 4 + [scheduled.id]


def test_a_retry_that_waits_for_its_backoff_does_not_push_until_due(nspace, engine, receiver):
    job = engine.create(nspace, backoff={"type": "fixed", "delaySeconds": 30, "jitter": False})
    receiver.clear_log()
    engine.fail(engine.start(engine.deliver(job)), "x")
    # the backoff keeps the retried job scheduled: no push yet
    assert (job.status, job.attempt_number) == ("scheduled", 2)
    assert job.events.last().type == "retried"
    assert pushes(receiver) == []
    # until its time comes
    engine.make_pending_again(job, "scheduled")
    assert [b["jobId"] for b in push_bodies(receiver)] == [job.id]


def test_the_name_filter_limits_pushes(nspace, engine, receiver):
    nspace.channels.push_names = ["thumbs.make"]
    nspace.channels.save()

    engine.create(nspace, name="email.send")
    wanted = engine.create(nspace, name="thumbs.make")

    assert [b["jobId"] for b in push_bodies(receiver)] == [wanted.id]


def test_it_tries_once_and_retries_at_most_once(nspace, engine, httpserver):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    httpserver.expect_request("/push").respond_with_data("down", status=502)

    engine.create(nspace)

    rows = NotificationDelivery.objects.filter(channel="push").order_by("id")
    assert [(r.attempt, r.status_code) for r in rows] == [(1, 502), (2, 502)]
    nspace.refresh_from_db()
    assert nspace.channels.push_last_error == "HTTP 502: down"
    assert not PendingNotification.objects.exists()


def test_a_push_failure_has_no_effect_on_the_job(nspace, engine, httpserver):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    httpserver.expect_request("/push").respond_with_data("nope", status=404)

    job = engine.create(nspace)

    job.refresh_from_db()
    assert job.status == "pending" and job.events.count() == 1
    assert NotificationDelivery.objects.filter(channel="push").count() == 1  # 4xx: no retry


def test_pushes_are_held_while_paused_and_resume_wakes_workers(nspace, engine, receiver):
    space_services.pause_space(nspace)
    first = engine.create(nspace, name="a")
    engine.create(nspace, name="b")
    assert pushes(receiver) == []

    with engine.capture(execute=True):
        space_services.resume_space(nspace)

    # one wake for the head of the queue: a woken worker polls the rest
    assert [b["jobId"] for b in push_bodies(receiver)] == [first.id]


def test_resume_wakes_each_filtered_name(nspace, engine, receiver):
    nspace.channels.push_names = ["a", "b", "c"]
    nspace.channels.save()
    space_services.pause_space(nspace)
    a1 = engine.create(nspace, name="a")
    engine.create(nspace, name="a")
    b1 = engine.create(nspace, name="b")
    engine.create(nspace, name="z")

    with engine.capture(execute=True):
        space_services.resume_space(nspace)

    assert sorted(b["jobId"] for b in push_bodies(receiver)) == sorted([a1.id, b1.id])


def test_it_skips_a_push_for_a_job_already_taken(nspace, engine, receiver):
    job = engine.create(nspace)
    receiver.clear_log()
    engine.deliver(job)
    [row] = outbox.save_and_enqueue([outbox._row(nspace, job, None, "push", ["job.pending"])])

    assert pushes(receiver) == []
    assert not PendingNotification.objects.filter(pk=row).exists()


def test_a_stale_push_is_not_sent(nspace, engine, receiver):
    job = Job.objects.create(space=nspace, name="late")
    with time_machine.travel(timezone.now() - timedelta(seconds=61)):
        PendingNotification.objects.create(
            space=nspace, job=job, channel="push", events=["job.pending"], token="t"
        )
    from notifications import tasks

    assert tasks.deliver.apply(args=[PendingNotification.objects.get().pk, "t"]).get() == (
        "skipped: stale"
    )
    assert pushes(receiver) == []
