"""The channels fed by the real job engine (jobs.services), not hand-written events."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from jobs import services as jobs
from jobs.models import JobEvent

SLACK = "/slack/T000/B000/secret"


@pytest.fixture
def receiver(httpserver):
    for path in (SLACK, "/push", "/cb"):
        httpserver.expect_request(path).respond_with_data("ok")
    return httpserver


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def call(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return call


def bodies(httpserver, path):
    return [json.loads(r.data) for r, _ in httpserver.log if r.path == path]


def test_a_job_that_dies_after_a_retry(nspace, receiver, run):
    job, _ = run(
        jobs.create_job,
        nspace,
        {
            "name": "email.send",
            "max_retries": 1,
            "backoff": {"type": "fixed", "delaySeconds": 0},
            "callback_url": receiver.url_for("/cb"),
            "callback_headers": {"X-Cb": "1"},
        },
    )
    for error in ("smtp down", "smtp still down"):
        (polled,) = run(jobs.poll_jobs, nspace)
        run(jobs.ack_job, polled)
        run(jobs.fail_job, polled, error)

    slack = [b["blocks"][0]["text"]["text"] for b in bodies(receiver, SLACK)]
    assert slack == [
        ":inbox_tray: *Job created*",
        ":arrow_forward: *Job started*",
        ":warning: *Job attempt failed*",
        ":arrow_forward: *Job started*",
        ":warning: *Job attempt failed*",
        ":skull: *Job is dead*",
    ]
    # pending twice: created, then retried straight back to pending
    assert [b["jobId"] for b in bodies(receiver, "/push")] == [job.id, job.id]
    (callback,) = bodies(receiver, "/cb")
    assert callback["status"] == "dead" and callback["result"] == {"error": "smtp still down"}
    assert callback["attemptNumber"] == 1  # the second attempt, counted from 0
    assert JobEvent.objects.filter(job=job, type="callback_sent").count() == 1


def test_scheduled_and_delivery_timeout_pushes_come_from_the_sweeper(nspace, receiver, run):
    nspace.channels.slack_webhook_url = ""
    nspace.channels.save()
    soon = timezone.now() + timedelta(seconds=30)
    job, _ = run(jobs.create_job, nspace, {"name": "later", "scheduled_for": soon})
    assert bodies(receiver, "/push") == []

    with time_machine.travel(soon + timedelta(seconds=1)):
        run(jobs.sweep)
        (polled,) = run(jobs.poll_jobs, nspace)
    with time_machine.travel(soon + timedelta(seconds=polled.timeout_seconds + 5)):
        run(jobs.sweep)  # no ack: back to pending

    assert [b["jobId"] for b in bodies(receiver, "/push")] == [job.id, job.id]


def test_kill_and_redrive(nspace, receiver, run):
    nspace.channels.slack_events = ["killed"]
    nspace.channels.save()
    job, _ = run(jobs.create_job, nspace, {"name": "x", "callback_url": receiver.url_for("/cb")})
    run(jobs.kill_job, job, "wrong input")
    run(jobs.retry_job, job)

    assert "wrong input" in json.dumps(bodies(receiver, SLACK))
    assert [b["status"] for b in bodies(receiver, "/cb")] == ["killed"]
    assert len(bodies(receiver, "/push")) == 2  # created, and the redrive's pending
