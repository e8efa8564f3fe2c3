"""Nothing is lost when the broker is away: the outbox keeps it until flush_outbox()."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.utils import timezone
from kombu.exceptions import OperationalError

from notifications import outbox, tasks
from notifications.models import NotificationDelivery, PendingNotification


@pytest.fixture
def broker_down():
    error = OperationalError("Error 111 connecting to redis. Connection refused.")
    with (
        mock.patch.object(tasks.deliver, "apply_async", side_effect=error) as deliver,
        mock.patch.object(tasks.dispatch, "apply_async", side_effect=error) as dispatch,
    ):
        yield deliver, dispatch


@pytest.fixture
def receiver(httpserver):
    httpserver.expect_request("/push").respond_with_data("ok")
    httpserver.expect_request("/slack/T000/B000/secret").respond_with_data("ok")
    httpserver.expect_request("/cb").respond_with_data("ok")
    return httpserver


def sent(httpserver, path):
    return [json.loads(r.data) for r, _ in httpserver.log if r.path == path]


def test_job_creation_succeeds_and_keeps_the_notifications_when_the_broker_is_down(
    nspace, engine, receiver, broker_down
):
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()

    job = engine.create(nspace)

    assert job.events.count() == 1
    rows = PendingNotification.objects.order_by("channel")
    assert [(r.channel, r.events, r.lease_until) for r in rows] == [
        ("push", ["job.pending"], None),
        ("slack", ["created"], None),
    ]
    assert receiver.log == []


def test_after_a_failed_publish_the_process_stops_trying_for_a_while(
    nspace, engine, receiver, broker_down
):
    deliver, dispatch = broker_down
    engine.create(nspace)
    engine.create(nspace)
    engine.create(nspace)

    # one publish attempt (the first commit), then the breaker holds off
    assert deliver.call_count + dispatch.call_count == 1
    assert PendingNotification.objects.filter(lease_until__isnull=True).count() == 6


def test_the_flush_sends_everything_once_the_broker_is_back(nspace, engine, receiver):
    nspace.channels.slack_events = ["created", "completed"]
    nspace.channels.save()
    down = OperationalError("down")
    with (
        mock.patch.object(tasks.deliver, "apply_async", side_effect=down),
        mock.patch.object(tasks.dispatch, "apply_async", side_effect=down),
    ):
        job = engine.create(nspace, callback_url=receiver.url_for("/cb"))
        engine.complete(engine.start(engine.deliver(job)), {"n": 1})
    assert PendingNotification.objects.count() == 4  # push, slack x2, callback

    outbox.reset_breaker()
    result = outbox.flush_outbox()

    assert result == {"enqueued": 4, "dropped_pushes": 0, "wakes": 0}
    assert not PendingNotification.objects.exists()
    # the wake is pointless now: the job was taken (and finished) meanwhile
    assert sent(receiver, "/push") == []
    assert len(sent(receiver, "/slack/T000/B000/secret")) == 2
    assert [b["status"] for b in sent(receiver, "/cb")] == ["completed"]
    assert outbox.flush_outbox() == {"enqueued": 0, "dropped_pushes": 0, "wakes": 0}


def test_slack_and_callbacks_survive_a_long_outage(nspace, engine, receiver, broker_down):
    nspace.channels.push_url = ""
    nspace.channels.slack_events = ["killed"]
    nspace.channels.save()
    job = engine.create(nspace, callback_url=receiver.url_for("/cb"))
    engine.kill(job)
    outbox.reset_breaker()

    broker_down[0].side_effect = lambda args, *rest, **kw: tasks.deliver.apply(args=args)
    broker_down[1].side_effect = lambda args, *rest, **kw: tasks.dispatch.apply(args=args)
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        outbox.flush_outbox()

    assert len(sent(receiver, "/cb")) == 1
    assert len(sent(receiver, "/slack/T000/B000/secret")) == 1


def test_stale_pushes_are_replaced_by_one_wake_per_space(nspace, engine, receiver, broker_down):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    first = engine.create(nspace, name="a")
    engine.create(nspace, name="b")
    engine.create(nspace, name="c")
    assert PendingNotification.objects.count() == 3
    outbox.reset_breaker()
    broker_down[0].side_effect = lambda args, *rest, **kw: tasks.deliver.apply(args=args)
    broker_down[1].side_effect = lambda args, *rest, **kw: tasks.dispatch.apply(args=args)

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        result = outbox.flush_outbox()

    assert result == {"enqueued": 0, "dropped_pushes": 3, "wakes": 1}
    assert [b["jobId"] for b in sent(receiver, "/push")] == [first.id]
    assert not PendingNotification.objects.exists()


def test_a_push_within_its_max_age_is_still_sent(nspace, engine, receiver, broker_down):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    job = engine.create(nspace)
    outbox.reset_breaker()
    broker_down[0].side_effect = lambda args, *rest, **kw: tasks.deliver.apply(args=args)

    with time_machine.travel(timezone.now() + timedelta(seconds=59)):
        outbox.flush_outbox()

    assert [b["jobId"] for b in sent(receiver, "/push")] == [job.id]


def test_rows_with_celery_are_left_alone_until_their_lease_runs_out(nspace, engine, receiver):
    nspace.channels.push_url = ""
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    with mock.patch.object(tasks.deliver, "apply_async") as delay:  # accepted, then lost
        engine.create(nspace)
    (row,) = PendingNotification.objects.all()
    assert row.lease_until is not None and delay.call_count == 1
    old_token = row.token

    assert outbox.flush_outbox()["enqueued"] == 0
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=301)),
        mock.patch.object(tasks.deliver, "apply_async") as again,
    ):
        assert outbox.flush_outbox()["enqueued"] == 1
    row.refresh_from_db()
    assert row.token != old_token and again.call_args.args[0] == (row.pk, row.token)

    # the lost message turning up late does nothing: its token is no longer the row's
    assert tasks.deliver.apply(args=[row.pk, old_token]).get() == "superseded"
    assert receiver.log == []


def test_two_flushes_never_take_the_same_row(nspace, engine, receiver, broker_down):
    engine.create(nspace)
    outbox.reset_breaker()
    taken = []
    broker_down[0].side_effect = lambda args, *rest, **kw: taken.append(args)
    broker_down[1].side_effect = lambda args, *rest, **kw: taken.extend(
        (i, args[1]) for i in args[0]
    )

    first = outbox.flush_outbox()
    second = outbox.flush_outbox()

    assert first["enqueued"] == 2 and second["enqueued"] == 0
    assert len(taken) == 2


def test_a_retry_waiting_in_celery_is_not_flushed(nspace, engine, httpserver):
    nspace.channels.push_url = ""
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    httpserver.expect_request("/slack/T000/B000/secret").respond_with_data("", status=500)

    with mock.patch.object(tasks.deliver, "retry", side_effect=RuntimeError("queued")):
        engine.create(nspace)

    (row,) = PendingNotification.objects.all()
    assert row.attempt == 2 and row.lease_until > timezone.now() + timedelta(seconds=300)
    assert outbox.flush_outbox()["enqueued"] == 0
    assert NotificationDelivery.objects.count() == 1


def test_progress_and_log_events_cost_no_query(nspace, engine, django_assert_num_queries):
    from jobs.models import JobEvent

    job = engine.create(nspace)
    events = [
        JobEvent(job=job, space=nspace, type=t, status="running")
        for t in ("progress", "logs", "delivered", "checkpoint", "my.custom")
    ]
    with django_assert_num_queries(0):
        assert outbox.plan(events) == []
