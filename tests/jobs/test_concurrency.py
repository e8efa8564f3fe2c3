"""Atomic claims and idempotent creates under real concurrency, and long polling."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection

from jobs import services, wakeup
from jobs.api import views
from jobs.models import Job
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
