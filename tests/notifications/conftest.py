"""Fixtures for notifications: a space wired to a local receiver, and job transitions made by
the job lifecycle itself (jobs/services.py), committed with their on-commit callbacks run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job
from notifications import outbox
from tests.factories import SpaceFactory


@pytest.fixture(autouse=True)
def _fresh_breaker():
    outbox.reset_breaker()
    yield
    outbox.reset_breaker()


@pytest.fixture
def nspace(db, httpserver):
    """A space whose Slack and push both point at the local receiver, all Slack events on."""
    return SpaceFactory(
        name="billing",
        slack_webhook_url=httpserver.url_for("/slack/T000/B000/secret"),
        slack_events=["created", "started", "completed", "failed", "dead", "killed"],
        push_url=httpserver.url_for("/push"),
        push_headers={"X-Worker-Token": "hunter2"},
    )


class Engine:
    """Job transitions made by the lifecycle itself (jobs/services.py), each committed with its
    on-commit callbacks run: what notifications see of the job engine, rules included (retry
    or dead, the sweeper's requeues).

    Each call keeps the caller's instance up to date and returns it. Jobs are created without
    backoff delay unless told otherwise, so a retried job is pending again at once.
    """

    NO_BACKOFF = {"type": "fixed", "delaySeconds": 0, "jitter": False}

    def __init__(self, capture) -> None:
        self.capture = capture

    def _commit(self, job: Job, transition) -> Job:
        with self.capture(execute=True):
            transition()
        job.refresh_from_db()
        return job

    def create(self, space, name: str = "email.send", **fields) -> Job:
        data = {"name": name, "backoff": self.NO_BACKOFF, **fields}
        if data.pop("status", "pending") == "scheduled":
            data["scheduled_for"] = timezone.now() + timedelta(hours=1)
        with self.capture(execute=True):
            job, created = services.create_job(space, data)
        assert created
        return job

    def deliver(self, job: Job) -> Job:
        """Claimed by id (pending -> delivered), as the push receiver claims."""
        return self._commit(job, lambda: services.claim_job(job.space, job.id))

    def start(self, job: Job) -> Job:
        return self._commit(job, lambda: services.ack_job(job))

    def complete(self, job: Job, result=None) -> Job:
        return self._commit(job, lambda: services.complete_job(job, result))

    def fail(self, job: Job, error: str = "boom") -> Job:
        """A failed attempt: the lifecycle retries it while attempts are left, else it is dead."""
        return self._commit(job, lambda: services.fail_job(job, error))

    def kill(self, job: Job, reason: str | None = "operator") -> Job:
        return self._commit(job, lambda: services.kill_job(job, reason))

    def make_pending_again(self, job: Job, reason: str = "delivery_timeout") -> Job:
        """The sweeper's requeue, run the moment the job's delivery deadline is past
        ("delivery_timeout") or its scheduled time is reached ("scheduled"). It moves every job
        then due, as it would."""
        job.refresh_from_db()
        if reason == "delivery_timeout":
            kind, now = "delivery", job.delivery_deadline + timedelta(milliseconds=1)
        else:
            kind, now = "scheduled", job.available_at
        with self.capture(execute=True):
            moved = services.sweep(now=now)
        assert moved[kind] >= 1, moved
        job.refresh_from_db()
        assert job.status == Job.Status.PENDING
        return job

    def progress(self, job: Job) -> Job:
        return self._commit(job, lambda: services.report_progress(job, 50, "half"))


@pytest.fixture
def engine(django_capture_on_commit_callbacks) -> Engine:
    return Engine(django_capture_on_commit_callbacks)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)
