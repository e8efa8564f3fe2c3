"""Workflows under real concurrency (PostgreSQL): parents finishing at the same instant release
or cancel their shared children exactly once, and leave counters that agree with the rows."""

from __future__ import annotations

import threading

import pytest

from jobs import services
from jobs.models import Job, JobEvent
from tests import threads
from tests.factories import SpaceFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 8


def _running(space, name: str) -> Job:
    job, _ = services.create_job(space, {"name": name})
    claimed = services.claim_job(space, job.pk)
    return services.ack_job(claimed, claim_id=claimed.claim_id)


def _together(*calls) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(30)
        return call()

    workers = [threads.spawn(run, call) for call in calls]
    return threads.join_all(workers)


def test_two_parents_completing_at_once_release_each_child_exactly_once():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        a, b = _running(space, "a"), _running(space, "b")
        children = [
            services.create_job(space, {"name": "c", "depends_on": [a.pk, b.pk]})[0]
            for _ in range(5)
        ]

        _together(
            lambda a=a: services.complete_job(a, 1, claim_id=a.claim_id),
            lambda b=b: services.complete_job(b, 2, claim_id=b.claim_id),
        )

        for child in children:
            stored = Job.objects.get(pk=child.pk)
            assert (stored.status, stored.waiting_parents) == ("pending", 0)
            released = JobEvent.objects.filter(job=child, type="pending")
            assert released.count() == 1


def test_a_cascade_kill_racing_a_completion_leaves_the_child_cancelled_once():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        doomed, ok = _running(space, "doomed"), _running(space, "ok")
        child, _ = services.create_job(space, {"name": "c", "depends_on": [doomed.pk, ok.pk]})

        _together(
            lambda doomed=doomed: services.kill_job(Job(pk=doomed.pk, space_id=space.pk), "stop"),
            lambda ok=ok: services.complete_job(ok, 1, claim_id=ok.claim_id),
        )

        stored = Job.objects.get(pk=child.pk)
        assert (stored.status, stored.last_error) == ("killed", "parent failed")
        types = list(JobEvent.objects.filter(job=child).values_list("type", flat=True))
        assert types == ["created", "killed"]


def test_a_run_child_racing_a_kill_and_a_completion_is_released_once():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        doomed, ok = _running(space, "doomed"), _running(space, "ok")
        child, _ = services.create_job(
            space,
            {"name": "c", "depends_on": [doomed.pk, ok.pk], "on_parent_failure": "run"},
        )

        _together(
            lambda doomed=doomed: services.kill_job(Job(pk=doomed.pk, space_id=space.pk), "stop"),
            lambda ok=ok: services.complete_job(ok, 1, claim_id=ok.claim_id),
        )

        stored = Job.objects.get(pk=child.pk)
        assert (stored.status, stored.waiting_parents) == ("pending", 0)
        types = list(JobEvent.objects.filter(job=child).values_list("type", flat=True))
        assert types == ["created", "pending"]
