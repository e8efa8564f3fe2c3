"""Atomic claims and idempotent creates under real concurrency, and long polling."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.exceptions import http_status
from jobs import services, wakeup
from jobs.api import views
from jobs.models import Job, JobEvent
from tests import threads
from tests.factories import SpaceFactory, issue_key


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_pollers_deliver_two_thousand_jobs_exactly_once():
    space = SpaceFactory()
    for start in range(0, 2000, 1000):
        services.create_jobs(space, [{"name": f"j{i}"} for i in range(start, start + 1000)])
    barrier = threading.Barrier(16)

    def worker() -> list[str]:
        rng = random.Random()
        barrier.wait(30)
        got: list[str] = []
        empty = 0
        while empty < 3:
            jobs = services.poll_jobs(space, count=rng.randint(1, 50))
            if jobs:
                got += [job.id for job in jobs]
                empty = 0
            else:
                empty += 1
        return got

    results = threads.run_together(16, worker)
    delivered = [job_id for got in results for job_id in got]
    assert len(delivered) == 2000
    assert len(set(delivered)) == 2000
    assert Job.objects.filter(space=space, status="delivered").count() == 2000
    assert Job.objects.filter(space=space).exclude(delivery_count=1).count() == 0
    # One claim id per hand-out, never shared.
    assert Job.objects.values("claim_id").distinct().count() == 2000


# The embedded default's in-memory test database (shared cache) reports "table is locked" instead
# of waiting, so real concurrency is exercised on PostgreSQL; SQLite serialises writers anyway.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_idempotency_key_make_one_job():
    space = SpaceFactory()
    barrier = threading.Barrier(8)

    def create():
        barrier.wait(30)
        job, created = services.create_job(space, {"name": "pay", "idempotency_key": "order-7"})
        return job.id, created

    results = threads.run_together(8, create)
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Job.objects.filter(space=space).count() == 1
    assert Job.objects.get(space=space).events.filter(type="created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_waits_without_a_connection_and_wakes_on_a_new_job(monkeypatch, client_for):
    space = SpaceFactory()
    client = client_for(issue_key(space))
    real_wait = wakeup.wait
    observed: dict = {}

    def spy_wait(space_id, seen, timeout):
        if "created" not in observed:
            # The poll released its database connection before waiting (Django keeps the
            # in-memory SQLite test database's connection open on purpose).
            in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
            observed["connection_closed"] = connection.connection is None or in_memory
            # Another request creates a job while this poll waits.
            observed["created"] = threads.spawn(
                lambda: services.create_job(space, {"name": "late"})[0].id
            ).result()
        return real_wait(space_id, seen, timeout)

    monkeypatch.setattr(views.wakeup, "wait", spy_wait)
    response = client.post(
        f"/api/v1/spaces/{space.public_id}/jobs/poll", {"waitSeconds": 20}, format="json"
    )
    assert response.status_code == 200
    assert [j["id"] for j in response.json()["jobs"]] == [observed["created"]]
    assert observed["connection_closed"] is True


def test_a_job_created_in_this_process_wakes_waiters_at_once(space):
    seen = wakeup.generation(space.pk)
    wakeup.notify([space.pk])
    assert wakeup.generation(space.pk) == seen + 1


def test_a_poll_without_wait_answers_at_once(api, space, monkeypatch):
    monkeypatch.setattr(views.wakeup, "wait", lambda *a: pytest.fail("must not wait"))
    response = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json")
    assert response.json() == {"jobs": []}


# --- the sequencer and the sweeper under real concurrency (PostgreSQL) ----------------------


def _jobs_per_status(space) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Job.objects.filter(space=space).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_publishers_keep_the_space_seq_contiguous():
    """Eight threads create and move jobs of one space at once; every commit numbers the space's
    events (inline here). Afterwards the events are numbered 1..N, each once, N being every
    event the threads wrote, each job's in the order of its transitions."""
    space = SpaceFactory()
    no_backoff = {"type": "fixed", "delaySeconds": 0, "jitter": False}
    barrier = threading.Barrier(8)

    def publisher(n: int) -> int:
        """Create and transition jobs; returns how many events its calls wrote."""
        rng = random.Random(n)
        written = 0
        barrier.wait(30)
        for i in range(12):
            services.create_job(space, {"name": f"p{n}", "max_retries": 1, "backoff": no_backoff})
            written += 1
            # Any thread's job: the threads take each other's.
            jobs = services.poll_jobs(space, count=rng.randint(1, 3))
            written += len(jobs)
            for job in jobs:
                services.ack_job(job, claim_id=job.claim_id)
                services.report_progress(job, 50, f"{n}/{i}", claim_id=job.claim_id)
                written += 2
                if rng.random() < 0.3:
                    services.fail_job(job, "flaky", claim_id=job.claim_id)  # retried or dead
                else:
                    services.complete_job(job, {"by": n}, claim_id=job.claim_id)
                written += 1
        return written

    written = sum(threads.join_all([threads.spawn(publisher, n) for n in range(8)]))

    events = JobEvent.objects.filter(space=space)
    seqs = sorted(events.values_list("seq", flat=True), key=lambda s: (s is None, s))
    assert len(seqs) == written
    assert None not in seqs, f"{seqs.count(None)} of {written} events left unnumbered"
    # 1..N: no gap, no number handed out twice.
    assert seqs == list(range(1, written + 1))
    space.refresh_from_db()
    assert space.event_seq == written
    # Each job's events are numbered in the order its transitions committed (id order).
    per_job: dict[str, list[int]] = {}
    for job_id, seq in events.order_by("id").values_list("job_id", "seq"):
        per_job.setdefault(job_id, []).append(seq)
    assert all(s == sorted(s) for s in per_job.values())
    # The counts the numbering kept match the jobs' statuses.
    expected = dict.fromkeys(space.status_counts, 0) | _jobs_per_status(space)
    assert space.status_counts == expected


def _race_complete_and_sweep(space, n: int, meeting: dict) -> str:
    """One round: a running job past its execution deadline, completed by its worker while
    the sweeper runs. Returns who won ("complete" or "sweeper")."""
    # max_retries 1: the sweeper retries it (scheduled, a long backoff away); 0: it is dead.
    max_retries = n % 2
    created, _ = services.create_job(
        space,
        {
            "name": f"race{n}",
            "max_retries": max_retries,
            "backoff": {"type": "fixed", "delaySeconds": 3600, "jitter": False},
        },
    )
    (job,) = services.poll_jobs(space, names=[f"race{n}"], ack=True)
    assert job.id == created.id
    Job.objects.filter(pk=job.pk).update(execution_deadline=timezone.now() - timedelta(seconds=1))
    barrier = meeting["barrier"] = threading.Barrier(2)

    def complete() -> str:
        barrier.wait(10)
        try:
            services.complete_job(
                Job(id=job.id, space_id=space.pk), {"n": n}, claim_id=job.claim_id
            )
        except services.JobError as exc:
            return f"{http_status(exc)} {exc.code}"
        return "ok"

    def sweeper() -> int:
        return services.sweep()["execution"]

    answer, swept = threads.join_all([threads.spawn(complete), threads.spawn(sweeper)])

    final = Job.objects.get(pk=job.pk)
    after_start = list(
        final.events.filter(id__gt=final.events.get(type="started").id)
        .order_by("id")
        .values_list("type", flat=True)
    )
    if answer == "ok":
        # The worker won: completed with its result, and the sweeper left it alone.
        assert swept == 0, (answer, swept)
        assert (final.status, final.result, final.last_error) == ("completed", {"n": n}, "")
        assert after_start == ["completed"]
        return "complete"
    # The sweeper won: the late complete is refused as a stale claim, and changed nothing.
    assert answer == "409 stale_claim", answer
    assert swept == 1
    assert final.result is None and final.last_error == "timeout"
    assert final.claim_id is None and final.execution_deadline is None
    if max_retries:
        assert (final.status, final.attempt_number) == ("scheduled", 2)
        assert after_start == ["retried"]
    else:
        assert final.status == "dead"
        assert after_start == ["dead"]
    return "sweeper"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_complete_racing_the_sweeper_has_exactly_one_winner(monkeypatch):
    space = SpaceFactory()
    # The sweeper meets the worker at the round's barrier just as it looks for running jobs
    # past their deadline (its scheduled and delivery steps come first, and would otherwise let
    # the complete through every time).
    meeting: dict = {}
    real_due = services._due

    def due(status, *args, **kwargs):
        if status == Job.Status.RUNNING:
            meeting["barrier"].wait(10)
        return real_due(status, *args, **kwargs)

    monkeypatch.setattr(services, "_due", due)
    winners = [_race_complete_and_sweep(space, n, meeting) for n in range(40)]
    assert set(winners) <= {"complete", "sweeper"}
    # Whoever won each round, the space's events are numbered 1..N, each once.
    seqs = sorted(JobEvent.objects.filter(space=space).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
