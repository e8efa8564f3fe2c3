"""Per-key limits under concurrent pollers on PostgreSQL: exact, and every job still goes out."""

from __future__ import annotations

import threading

import pytest
from django.db.models import Count

from jobs import flow, services
from jobs.models import Job
from tests import threads
from tests.factories import SpaceFactory

KEYS = 40
JOBS_PER_KEY = 5


def most_in_flight_of_one_key(space) -> int:
    """The most jobs of any one key the database holds as delivered or running."""
    counts = (
        Job.objects.filter(space=space, status__in=flow.IN_FLIGHT, concurrency_key__isnull=False)
        .values("concurrency_key")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    return max(counts, default=0)


class KeyWatch:
    """Inside every claim made under the limits (the poll's own transaction, after its claims,
    before its commit, the name's row lock held): the most in flight of one key the database
    then holds. Jobs enter flight only through such claims, so a committed overshoot shows."""

    def __init__(self, monkeypatch, space) -> None:
        self.peak = 0
        self.claims = 0
        self._lock = threading.Lock()
        real = services._claim_limited

        def watched(*args, **kwargs) -> list[str]:
            ids = real(*args, **kwargs)
            most = most_in_flight_of_one_key(space)
            with self._lock:
                self.peak = max(self.peak, most)
                self.claims += len(ids)
            return ids

        monkeypatch.setattr(services, "_claim_limited", watched)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_pollers_never_hold_two_jobs_of_one_key(monkeypatch):
    # given: 40 keys with 5 jobs each, each key's jobs side by side in the queue (a poll
    # without the limit would take several of one key), and at most 1 in flight per key
    space = SpaceFactory()
    items = [
        {"name": "sync", "concurrency_key": f"customer-{k}"}
        for k in range(KEYS)
        for _ in range(JOBS_PER_KEY)
    ]
    services.create_jobs(space, items)
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    total = KEYS * JOBS_PER_KEY
    watch = KeyWatch(monkeypatch, space)
    # What the workers hold, key by key: a key is given back before its job completes, so a
    # second holder of one key can only mean a second job of it handed out while in flight.
    held: dict[str, int] = {}
    doubled: list[str] = []
    done = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait(30)
        while True:
            jobs = services.poll_jobs(space, count=4, ack=True)
            if not jobs:
                with lock:
                    if done[0] >= total:
                        return
                continue
            with lock:
                for job in jobs:
                    held[job.concurrency_key] = held.get(job.concurrency_key, 0) + 1
                    if held[job.concurrency_key] > 1:
                        doubled.append(job.concurrency_key)
            for job in jobs:
                with lock:
                    held[job.concurrency_key] -= 1
                services.complete_job(job)
                with lock:
                    done[0] += 1

    # when
    threads.run_together(16, worker)

    # then: every job went out once, through the limits, and no key ever had two in flight
    assert done[0] == total
    assert watch.claims == total
    assert watch.peak == 1
    assert doubled == []
    assert Job.objects.filter(space=space, status=Job.Status.COMPLETED).count() == total


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_pollers_hand_out_one_job_per_key_and_no_more(monkeypatch):
    # Nobody completes: the first jobs out are exactly one per key, whatever the interleaving.
    space = SpaceFactory()
    services.create_jobs(
        space,
        [{"name": "sync", "concurrency_key": f"k{k}"} for _ in range(3) for k in range(KEYS)]
        + [{"name": "sync"} for _ in range(10)],
    )
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    barrier = threading.Barrier(16)

    def poller() -> list[Job]:
        got: list[Job] = []
        barrier.wait(30)
        for _ in range(8):
            got += services.poll_jobs(space, count=5)
        return got

    got = [job for jobs in threads.run_together(16, poller) for job in jobs]
    keyed = [j.concurrency_key for j in got if j.concurrency_key is not None]
    assert sorted(keyed) == sorted(f"k{k}" for k in range(KEYS))
    assert len([j for j in got if j.concurrency_key is None]) == 10
    assert most_in_flight_of_one_key(space) == 1
