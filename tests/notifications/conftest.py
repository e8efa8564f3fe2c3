"""Fixtures for notifications: a space wired to a local receiver, and job transitions
written the way the job engine writes them (jobs.events.record inside a transaction)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import events
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
    """The job engine's writes, reduced to what notifications see: a status change and one
    event, committed, with on-commit callbacks run."""

    def __init__(self, capture) -> None:
        self.capture = capture

    def _commit(self, job: Job, type: str, data=None, previous_status=None, **changes) -> Job:
        with self.capture(execute=True):
            for field, value in changes.items():
                setattr(job, field, value)
            if changes:
                job.save()
            events.record(job, type, data, previous_status=previous_status)
        return job

    def create(self, space, name: str = "email.send", **fields) -> Job:
        with self.capture(execute=True):
            job = Job.objects.create(space=space, name=name, **fields)
            events.record(job, "created", None, previous_status=None)
        return job

    def deliver(self, job: Job) -> Job:
        return self._commit(job, "delivered", previous_status=job.status, status="delivered")

    def start(self, job: Job) -> Job:
        return self._commit(job, "started", previous_status=job.status, status="running")

    def complete(self, job: Job, result=None) -> Job:
        return self._commit(
            job,
            "completed",
            {"result": result},
            previous_status=job.status,
            status="completed",
            result=result,
            completed_at=timezone.now(),
        )

    def fail(self, job: Job, error: str = "boom") -> Job:
        """A failed attempt: retried while attempts are left, else dead."""
        previous = job.status
        if job.attempt_number <= job.max_retries:
            nxt = job.attempt_number + 1
            available = timezone.now()
            return self._commit(
                job,
                "retried",
                {"error": error, "attemptNumber": nxt, "availableAt": available.isoformat()},
                previous_status=previous,
                status="pending",
                attempt_number=nxt,
                last_error=error,
                available_at=available,
            )
        return self._commit(
            job,
            "dead",
            {"error": error},
            previous_status=previous,
            status="dead",
            last_error=error,
            completed_at=timezone.now(),
        )

    def kill(self, job: Job, reason: str | None = "operator") -> Job:
        return self._commit(
            job,
            "killed",
            {"reason": reason},
            previous_status=job.status,
            status="killed",
            completed_at=timezone.now(),
        )

    def make_pending_again(self, job: Job, reason: str = "delivery_timeout") -> Job:
        return self._commit(
            job, "pending", {"reason": reason}, previous_status=job.status, status="pending"
        )

    def progress(self, job: Job) -> Job:
        return self._commit(job, "progress", {"percent": 50, "message": "half"})


@pytest.fixture
def engine(django_capture_on_commit_callbacks) -> Engine:
    return Engine(django_capture_on_commit_callbacks)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)
