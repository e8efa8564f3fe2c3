"""Groups under real concurrency (PostgreSQL): members finishing at the same instant create the
completion job exactly once, and leave counts that agree with the member rows."""

from __future__ import annotations

import threading

import pytest

from jobs import groups, services
from jobs.models import Job, JobEvent, JobGroup
from tests import threads
from tests.factories import SpaceFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 4
MEMBERS = 12


def _together(calls) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(30)
        return call()

    return threads.join_all([threads.spawn(run, call) for call in calls])


def _running_group(space, n: int) -> list[Job]:
    group = {"name": "g", "on_complete": {"name": "done"}}
    items = [{"name": "member", "group": group} for _ in range(n)]
    services.create_jobs(space, items)
    claimed = services.poll_jobs(space, count=n, names=["member"], ack=True)
    assert len(claimed) == n
    return claimed


def test_members_completing_at_the_same_instant_fire_the_group_exactly_once():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        members = _running_group(space, MEMBERS)

        _together(
            [lambda m=m: services.complete_job(m, {"ok": 1}, claim_id=m.claim_id) for m in members]
        )

        group = JobGroup.objects.get(pk=members[0].group_id)
        completions = Job.objects.filter(space=space, name="done", payload__group__id=group.pk)
        assert completions.count() == 1
        assert group.completion_job_id == completions.get().pk
        assert (group.completed, group.done, group.total) == (MEMBERS, MEMBERS, MEMBERS)
        assert groups.recount(group.pk) == {"completed": MEMBERS}
        progress = JobEvent.objects.filter(type="group.progress", data__groupId=group.pk)
        assert sorted(e.data["done"] for e in progress) == list(range(1, MEMBERS + 1))
        # the repair step finds nothing left to do
        assert groups.repair_groups() == {"fired": 0}


def test_members_ending_every_way_at_once_fire_once_with_the_right_counts():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        members = _running_group(space, 9)
        calls = []
        for i, m in enumerate(members):
            if i % 3 == 0:
                calls.append(lambda m=m: services.complete_job(m, None, claim_id=m.claim_id))
            elif i % 3 == 1:
                calls.append(
                    lambda m=m: services.fail_job(m, "boom", retry=False, claim_id=m.claim_id)
                )
            else:
                calls.append(lambda m=m: services.kill_job(Job(pk=m.pk, space_id=space.pk)))

        _together(calls)

        group = JobGroup.objects.get(pk=members[0].group_id)
        assert (group.completed, group.dead, group.killed) == (3, 3, 3)
        assert (
            Job.objects.filter(space=space, name="done", payload__group__id=group.pk).count() == 1
        )


def test_the_repair_step_racing_the_last_member_fires_once():
    space = SpaceFactory()
    for _ in range(ROUNDS):
        members = _running_group(space, 2)
        first, last = members
        services.complete_job(first, None, claim_id=first.claim_id)
        # the repair has found nothing (one member active) before the last one completes
        _together(
            [
                lambda last=last: services.complete_job(last, None, claim_id=last.claim_id),
                groups.repair_groups,
                groups.repair_groups,
            ]
        )

        group = JobGroup.objects.get(pk=first.group_id)
        assert group.fired_at is not None
        assert (
            Job.objects.filter(space=space, name="done", payload__group__id=group.pk).count() == 1
        )
