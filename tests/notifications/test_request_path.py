"""Notifications never run on the request path: a commit only writes the outbox and
publishes one message, whatever the receiver does."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from celery import Celery
from kombu.exceptions import OperationalError
from werkzeug import Response

from config.celery import app as celery_app
from notifications import tasks
from notifications.models import NotificationDelivery, PendingNotification


@pytest.fixture
def hanging_receiver(httpserver):
    entered = threading.Event()
    release = threading.Event()

    def hang(request):
        entered.set()
        release.wait(30)
        return Response("too late")

    httpserver.expect_request("/push").respond_with_handler(hang)
    yield entered
    release.set()


def test_a_hanging_receiver_does_not_slow_job_creation(nspace, engine, hanging_receiver, settings):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()

    # given a broker that accepts the message (the real one would hand it to a worker)
    with mock.patch.object(tasks.deliver, "apply_async") as publish:
        # when a job is created and committed
        job = engine.create(nspace)

    # then the request path only enqueued: one message, nothing sent yet
    assert publish.call_count == 1
    assert not hanging_receiver.is_set()
    assert NotificationDelivery.objects.count() == 0
    (row,) = PendingNotification.objects.all()
    assert publish.call_args.args[0] == (row.pk, row.token)

    # and in the worker, the hang costs one attempt bounded by the total deadline
    settings.NOTIFICATIONS_POLICIES = {
        "push": {"total_timeout": 0.5, "read_timeout": 5, "max_attempts": 1}
    }
    tasks.deliver.apply(args=publish.call_args.args[0])
    assert hanging_receiver.is_set()
    (delivery,) = NotificationDelivery.objects.all()
    assert not delivery.success and "no complete response" in delivery.error
    job.refresh_from_db()
    assert job.status == "pending"


def test_claiming_and_progress_enqueue_nothing(nspace, engine, hanging_receiver):
    def enqueued(transition) -> int:
        with (
            mock.patch.object(tasks.deliver, "apply_async") as deliver,
            mock.patch.object(tasks.dispatch, "apply_async") as dispatch,
        ):
            transition()
        return deliver.call_count + dispatch.call_count

    with mock.patch.object(tasks.deliver, "apply_async"):
        job = engine.create(nspace)
    PendingNotification.objects.all().delete()

    assert enqueued(lambda: engine.deliver(job)) == 0
    assert not PendingNotification.objects.exists()
    # (the ack between: "started" is a Slack message of this space)
    with mock.patch.object(tasks.deliver, "apply_async"):
        engine.start(job)
    PendingNotification.objects.all().delete()
    assert enqueued(lambda: engine.progress(job)) == 0
    assert not PendingNotification.objects.exists()
    assert not hanging_receiver.is_set()
    assert job.events.filter(type__in=["delivered", "progress"]).count() == 2


def test_a_bulk_transition_publishes_one_message(nspace, engine, httpserver):
    from jobs import services

    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    with (
        mock.patch.object(tasks.deliver, "apply_async") as deliver,
        mock.patch.object(tasks.dispatch, "apply_async") as dispatch,
        engine.capture(execute=True),
    ):
        services.create_jobs(nspace, [{"name": "bulk"}] * 25)

    assert deliver.call_count == 0 and dispatch.call_count == 1
    ids, token = dispatch.call_args.args[0]
    assert len(ids) == 25 and PendingNotification.objects.filter(token=token).count() == 25


def test_the_broker_settings_fail_fast():
    conf = celery_app.conf
    assert conf.broker_connection_timeout == 2
    assert conf.task_publish_retry is False
    # broker_connection_max_retries is read by the worker only: it retries for ever
    # (tests/ops/test_worker_reconnects.py); publishing fails fast, as the next test shows.


@pytest.mark.timeout(30)
def test_publishing_to_an_unreachable_redis_raises_instead_of_hanging():
    probe = Celery("probe")
    probe.config_from_object("django.conf:settings", namespace="CELERY")
    probe.conf.broker_url = "redis://127.0.0.1:1/0"
    probe.conf.task_always_eager = False

    @probe.task
    def noop() -> None:
        pass

    with pytest.raises(OperationalError):
        noop.delay()
    probe.close()


@pytest.mark.timeout(30)
def test_after_a_failed_publish_the_next_one_probes_without_retrying(monkeypatch):
    import time

    from notifications import outbox

    conf = celery_app.conf
    saved = conf.task_always_eager, conf.broker_url
    conf.task_always_eager, conf.broker_url = False, "redis://127.0.0.1:1/0"
    monkeypatch.setattr(outbox, "_probing", True)
    try:
        # kombu's reconnect loop sleeps between tries: the probe must not get that far
        with mock.patch("kombu.utils.functional.sleep") as sleep:
            assert outbox._publish([1], "token") is False
        assert sleep.call_count == 0
    finally:
        conf.task_always_eager, conf.broker_url = saved

    assert outbox._publish_paused_until > time.monotonic()
    assert outbox._probing is True
