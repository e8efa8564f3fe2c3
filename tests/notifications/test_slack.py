from __future__ import annotations

import json
from unittest import mock

import pytest
from django.test import override_settings
from werkzeug import Response

from notifications import services, tasks
from notifications.models import NotificationDelivery, PendingNotification

SLACK = "/slack/T000/B000/secret"


def slack_bodies(httpserver) -> list[dict]:
    return [json.loads(req.data) for req, _ in httpserver.log if req.path == SLACK]


def slack_titles(httpserver) -> list[str]:
    return [b["blocks"][0]["text"]["text"] for b in slack_bodies(httpserver)]


def deliveries(channel="slack"):
    return list(NotificationDelivery.objects.filter(channel=channel).order_by("id"))


@pytest.fixture
def receiver(httpserver):
    httpserver.expect_request(SLACK, method="POST").respond_with_data("ok")
    httpserver.expect_request("/push", method="POST").respond_with_data("ok")
    return httpserver


@override_settings(PUBLIC_URL="https://jobs.example.com")
def test_it_posts_a_readable_message_with_a_link_to_the_job(nspace, engine, receiver):
    job = engine.create(nspace, name="email.send")

    (body,) = slack_bodies(receiver)
    text = json.dumps(body)
    assert "Job created" in body["text"] and "email.send" in body["text"]
    assert f"https://jobs.example.com/spaces/{nspace.public_id}/jobs/{job.id}" in text
    assert f"{nspace.organization.slug}/billing" in text
    assert "*Status:* pending" in text and "*Attempt:* 1 of 4" in text
    (row,) = deliveries()
    assert row.success and row.status_code == 200 and row.event == "created"
    assert row.target_host == "localhost" and row.job_id == job.id
    assert not PendingNotification.objects.exists()


def test_it_sends_only_the_chosen_events(nspace, engine, receiver):
    nspace.channels.slack_events = ["completed", "dead"]
    nspace.channels.save()

    job = engine.create(nspace)
    engine.start(engine.deliver(job))
    engine.progress(job)
    engine.complete(job, {"ok": True})

    assert slack_titles(receiver) == [":white_check_mark: *Job completed*"]


def test_a_job_that_dies_sends_failed_on_every_attempt_then_dead(nspace, engine, receiver):
    nspace.channels.slack_events = ["failed", "dead"]
    nspace.channels.save()
    job = engine.create(nspace, max_retries=1)

    engine.fail(engine.start(engine.deliver(job)), "first error")
    engine.fail(engine.start(engine.deliver(job)), "second <b>error</b>")

    assert slack_titles(receiver) == [
        ":warning: *Job attempt failed*",
        ":warning: *Job attempt failed*",
        ":skull: *Job is dead*",
    ]
    first, second, dead = (json.dumps(b) for b in slack_bodies(receiver))
    assert "first error" in first and "*Attempt:* 1 of 2" in first and "Retrying" in first
    assert "second &lt;b&gt;error&lt;/b&gt;" in second and "*Attempt:* 2 of 2" in second
    assert "*Status:* dead" in dead
    assert [d.event for d in deliveries()] == ["failed", "failed", "dead"]


def test_killed_messages_carry_the_reason(nspace, engine, receiver):
    job = engine.create(nspace)
    receiver.clear_log()
    engine.kill(job, "stuck on a lock")

    (body,) = slack_bodies(receiver)
    assert "Job killed" in body["text"] and "stuck on a lock" in json.dumps(body)


def test_it_retries_a_500_until_slack_accepts(nspace, engine, httpserver):
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    for _ in range(2):
        httpserver.expect_oneshot_request(SLACK).respond_with_data("rollup_error", status=500)
    httpserver.expect_oneshot_request(SLACK).respond_with_data("ok")
    httpserver.expect_request("/push").respond_with_data("ok")

    engine.create(nspace)

    rows = deliveries()
    assert [(r.attempt, r.success, r.status_code) for r in rows] == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]
    assert rows[0].error == "HTTP 500: rollup_error"
    nspace.refresh_from_db()
    assert nspace.channels.slack_disabled_at is None
    assert not PendingNotification.objects.exists()


def test_it_gives_up_after_five_attempts_without_disabling(nspace, engine, httpserver):
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    httpserver.expect_request(SLACK).respond_with_data("busy", status=503)
    httpserver.expect_request("/push").respond_with_data("ok")

    engine.create(nspace)

    assert [r.attempt for r in deliveries()] == [1, 2, 3, 4, 5]
    nspace.refresh_from_db()
    assert nspace.channels.slack_disabled_at is None
    assert nspace.channels.slack_last_error == "HTTP 503: busy"
    assert not PendingNotification.objects.exists()


def test_it_honours_retry_after_on_429(nspace, engine, httpserver):
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    httpserver.expect_oneshot_request(SLACK).respond_with_response(
        Response("rate_limited", status=429, headers={"Retry-After": "42"})
    )
    httpserver.expect_oneshot_request(SLACK).respond_with_data("ok")
    httpserver.expect_request("/push").respond_with_data("ok")

    with mock.patch.object(tasks.deliver, "retry", wraps=tasks.deliver.retry) as retry:
        engine.create(nspace)

    assert retry.call_count == 1
    assert retry.call_args.kwargs["countdown"] >= 42
    assert [r.success for r in deliveries()] == [False, True]


def test_backoff_is_exponential_and_bounded():
    with mock.patch("notifications.tasks.random.uniform", return_value=1.0):
        delays = [tasks.backoff_seconds("slack", n) for n in range(1, 8)]
        assert delays == [10, 20, 40, 80, 160, 300, 300]
        assert tasks.backoff_seconds("slack", 1, retry_after=100_000) == 900


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "no_service"),
        (410, "channel_is_archived"),
        (403, "invalid_token"),
        (400, "invalid_payload"),
        (302, ""),
    ],
)
def test_it_disables_the_channel_on_a_permanent_error(nspace, engine, httpserver, status, body):
    nspace.channels.slack_events = ["created", "completed"]
    nspace.channels.save()
    httpserver.expect_request(SLACK).respond_with_data(body, status=status)
    httpserver.expect_request("/push").respond_with_data("ok")

    job = engine.create(nspace)
    engine.complete(engine.start(engine.deliver(job)))

    (row,) = deliveries()  # no retry, and nothing more once disabled
    assert not row.success and row.status_code == status
    nspace.refresh_from_db()
    assert nspace.channels.slack_disabled_at is not None
    assert nspace.channels.slack_last_error.startswith(f"HTTP {status}")


def test_saving_the_url_again_turns_a_disabled_channel_back_on(nspace, engine, httpserver):
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()
    httpserver.expect_oneshot_request(SLACK).respond_with_data("no_service", status=404)
    httpserver.expect_request(SLACK).respond_with_data("ok")
    httpserver.expect_request("/push").respond_with_data("ok")
    engine.create(nspace)
    engine.create(nspace)
    assert len(deliveries()) == 1

    services.update_slack(nspace, url=nspace.channels.slack_webhook_url)
    engine.create(nspace)

    nspace.refresh_from_db()
    assert nspace.channels.slack_disabled_at is None and nspace.channels.slack_last_error == ""
    assert [r.success for r in deliveries()] == [False, True]


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_a_webhook_on_a_private_address_is_refused_and_disabled(nspace, engine, httpserver):
    nspace.channels.slack_events = ["created"]
    nspace.channels.slack_webhook_url = "http://10.1.2.3/hook"
    nspace.channels.push_url = ""
    nspace.channels.save()

    engine.create(nspace)

    (row,) = deliveries()
    assert not row.success and row.status_code is None and "not allowed" in row.error
    nspace.refresh_from_db()
    assert nspace.channels.slack_disabled_at is not None
    assert httpserver.log == []


def test_nothing_is_sent_without_a_url(nspace, engine, httpserver):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.push_url = ""
    nspace.channels.save()

    engine.create(nspace)

    assert httpserver.log == []
    assert not NotificationDelivery.objects.exists()
    assert not PendingNotification.objects.exists()


def test_logs_name_the_host_but_never_the_url_or_header_values(nspace, engine, httpserver, caplog):
    import logging

    httpserver.expect_request(SLACK).respond_with_data("busy", status=500)
    httpserver.expect_request("/push").respond_with_data("ok")

    with caplog.at_level(logging.DEBUG):
        engine.create(nspace)

    ours = [r for r in caplog.records if r.name != "werkzeug"]  # the test receiver's own log
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "B000/secret" not in text and "hunter2" not in text
    sent = [
        r for r in ours if r.name == "notifications" and r.getMessage().startswith("notification")
    ]
    assert {(r.channel, r.host, r.getMessage()) for r in sent} == {
        ("slack", "localhost", "notification failed"),
        ("push", "localhost", "notification sent"),
    }


def test_a_crashing_attempt_is_retried_then_given_up(nspace, engine, httpserver):
    from notifications.transports.slack import SlackTransport

    nspace.channels.push_url = ""
    nspace.channels.slack_events = ["created"]
    nspace.channels.save()

    with mock.patch.object(SlackTransport, "payload", side_effect=KeyError("bug")) as payload:
        engine.create(nspace)

    assert payload.call_count == 5
    assert not PendingNotification.objects.exists()
    nspace.refresh_from_db()
    assert nspace.channels.slack_last_error == "internal error (KeyError)"
    assert nspace.channels.slack_disabled_at is None
