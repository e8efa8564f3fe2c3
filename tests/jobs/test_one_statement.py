"""On PostgreSQL create, poll, ack, progress, keepalive and complete run as one statement; they
must leave exactly what the ORM's path leaves, refuse what it refuses, and hold under races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine

from jobs import services
from jobs.models import Job, JobEvent
from tests import threads
from tests.factories import SpaceFactory

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 2, 5, 0, 0, 120_000, tzinfo=UTC)
FIELDS = [
    "status",
    "result",
    "progress",
    "claim_id",
    "attempt_number",
    "delivery_count",
    "started_at",
    "completed_at",
    "delivery_deadline",
    "execution_deadline",
    "updated_at",
]


def _run_lifecycle(space, *, keepalive_delivered: bool) -> tuple[dict, list[tuple]]:
    job, _ = services.create_job(
        space,
        {
            "name": "x",
            "timeout_seconds": 60,
            "payload": {"to": "a@example.com"},
            "callback_headers": {"X-Token": "secret"},
            "backoff": {"type": "fixed", "delaySeconds": 2},
        },
    )
    stored = Job.objects.get(pk=job.pk)
    assert (stored.payload, stored.callback_headers, stored.backoff, stored.created_at) == (
        job.payload,
        job.callback_headers,
        job.backoff,
        job.created_at,
    )
    (job,) = services.poll_jobs(space)
    if keepalive_delivered:
        services.keepalive_job(job, None, claim_id=job.claim_id)
    services.ack_job(job, claim_id=job.claim_id)
    services.report_progress(job, 50, "half", {"a": {"percent": 1}}, claim_id=job.claim_id)
    services.keepalive_job(job, 30, claim_id=job.claim_id)
    services.keepalive_job(job, None, claim_id=job.claim_id)
    services.complete_job(job, {"ok": [1, 2]}, claim_id=job.claim_id)
    row = Job.objects.values(*FIELDS, "payload", "backoff", "created_at").get(pk=job.pk)
    row["callback_headers"] = Job.objects.get(pk=job.pk).callback_headers
    row.pop("claim_id")  # a fresh ULID each run
    evts = list(
        JobEvent.objects.filter(job_id=job.pk)
        .order_by("id")
        .values_list("type", "status", "previous_status", "data", "attempt_number", "created_at")
    )
    return row, evts


@pytest.mark.django_db
@pytest.mark.parametrize("keepalive_delivered", [False, True])
def test_one_statement_leaves_what_the_locking_path_leaves(monkeypatch, keepalive_delivered):
    space = SpaceFactory()
    with time_machine.travel(NOW, tick=False):
        fast = _run_lifecycle(space, keepalive_delivered=keepalive_delivered)
        monkeypatch.setattr(services, "_in_one_statement", lambda *a, **k: False)
        monkeypatch.setattr(services, "_poll_postgres", lambda *a, **k: None)
        monkeypatch.setattr(services, "_insert_with_event", lambda job: False)
        slow = _run_lifecycle(space, keepalive_delivered=keepalive_delivered)
    assert fast == slow
    assert [e[0] for e in fast[1]][-1] == "completed"


@pytest.mark.django_db
def test_refusals_are_those_of_the_locking_path():
    space = SpaceFactory()
    job, _ = services.create_job(space, {"name": "x"})
    with pytest.raises(services.JobError) as exc:
        services.ack_job(job)
    assert exc.value.code == "invalid_transition"
    (job,) = services.poll_jobs(space)
    with pytest.raises(services.JobError) as exc:
        services.complete_job(job, None, claim_id="0" * 26)
    assert exc.value.code == "stale_claim"
    services.kill_job(job)
    with pytest.raises(services.JobError) as exc:
        services.report_progress(job, 1, "x", claim_id=job.claim_id)
    assert exc.value.code == "job_killed"
    other = SpaceFactory()
    ref = Job(id=job.id, space_id=other.pk)
    with pytest.raises(services.JobError) as exc:
        services.keepalive_job(ref, None)
    assert exc.value.code == "not_found"
    assert JobEvent.objects.filter(job_id=job.pk).count() == 3  # created, delivered, killed


@pytest.mark.django_db(transaction=True)
def test_of_eight_racing_completes_exactly_one_wins():
    space = SpaceFactory()
    services.create_job(space, {"name": "x"})
    (job,) = services.poll_jobs(space)
    barrier = threading.Barrier(8)

    def complete(n: int) -> tuple[str, int]:
        barrier.wait(5)
        try:
            services.complete_job(Job(id=job.id, space_id=space.pk), n, claim_id=job.claim_id)
        except services.JobError as exc:
            return exc.code, n
        return "ok", n

    outcomes = threads.join_all([threads.spawn(complete, n) for n in range(8)])
    assert sorted(code for code, _ in outcomes) == ["invalid_transition"] * 7 + ["ok"]
    (winner,) = [n for code, n in outcomes if code == "ok"]
    assert JobEvent.objects.filter(job_id=job.pk, type="completed").count() == 1
    final = Job.objects.get(pk=job.pk)
    # The winner's result is the one stored, and the one its event carries.
    assert (final.status, final.result) == ("completed", winner)
    assert JobEvent.objects.get(job_id=job.pk, type="completed").data == {"result": winner}


def _race_complete_and_kill() -> None:
    space = SpaceFactory()
    services.create_job(space, {"name": "x"})
    (job,) = services.poll_jobs(space)
    barrier = threading.Barrier(2)

    def run(action) -> bool:
        barrier.wait(5)
        try:
            action()
        except services.JobError:
            return False
        return True

    ref = Job(id=job.id, space_id=space.pk)
    completed, killed = threads.join_all(
        [
            threads.spawn(run, lambda: services.complete_job(ref, 1, claim_id=job.claim_id)),
            threads.spawn(run, lambda: services.kill_job(Job.objects.get(pk=job.pk))),
        ]
    )
    # Exactly one call succeeded, and it is the one whose outcome is stored.
    assert (completed, killed) in ((True, False), (False, True))
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.result) == (("completed", 1) if completed else ("killed", None))
    final = stored.status
    ends = list(
        JobEvent.objects.filter(job_id=job.pk, type__in=["completed", "killed"]).values_list(
            "type", flat=True
        )
    )
    assert final in ("completed", "killed") and ends == [final]


@pytest.mark.django_db(transaction=True)
def test_a_complete_racing_a_kill_leaves_one_of_the_two():
    for _ in range(10):
        _race_complete_and_kill()
