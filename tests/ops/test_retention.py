from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs import maintenance, retention
from jobs.models import Job, JobEvent, JobLog
from notifications.models import NotificationDelivery
from spaces.models import Space
from tests import threads
from tests.factories import JobFactory, SpaceFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def finished(space, status: str, age: timedelta, **kwargs) -> Job:
    """A finished job with an event and a log line, finished AGE before NOW."""
    job = JobFactory(space=space, status=status, completed_at=NOW - age, **kwargs)
    JobEvent.objects.create(job=job, space=space, type=status, status=status)
    JobLog.objects.create(job=job, seq=1, message="hello", timestamp=NOW - age)
    return job


def remaining(space) -> set[str]:
    return set(Job.objects.filter(space=space).values_list("id", flat=True))


@time_machine.travel(NOW, tick=False)
def test_it_deletes_exactly_what_is_due_and_keeps_the_rest():
    # given: a space with the default periods (14 days completed, 30 days dead and killed)
    space = SpaceFactory()
    day, second = timedelta(days=1), timedelta(seconds=1)
    due = {
        finished(space, "completed", 14 * day + second).id,
        finished(space, "dead", 30 * day + second).id,
        finished(space, "killed", 90 * day).id,
    }
    kept = {
        finished(space, "completed", 14 * day).id,  # exactly at the limit: kept
        finished(space, "completed", 2 * day).id,
        finished(space, "dead", 30 * day).id,
        finished(space, "killed", 29 * day).id,
        # Active jobs are never touched, however old.
        JobFactory(space=space, status="pending", created_at=NOW - 365 * day).id,
        JobFactory(space=space, status="running").id,
    }

    # when
    result = retention.prune_expired()

    # then
    assert remaining(space) == kept
    assert result["completed"] == 1 and result["dead"] == 1 and result["killed"] == 1
    assert not JobEvent.objects.filter(job_id__in=due).exists()
    assert not JobLog.objects.filter(job_id__in=due).exists()
    assert JobEvent.objects.filter(job_id__in=kept).count() == 4


@time_machine.travel(NOW, tick=False)
def test_each_space_has_its_own_periods():
    short = SpaceFactory(retention_completed_days=1, retention_failed_days=2)
    default = SpaceFactory()
    forever = SpaceFactory(retention_completed_days=0, retention_failed_days=0)
    old = timedelta(days=3)
    gone = [finished(short, "completed", old), finished(short, "dead", old)]
    kept = [finished(default, "completed", old), finished(default, "dead", old)]
    ancient = [finished(forever, "completed", timedelta(days=3650))]

    retention.prune_expired()

    assert remaining(short) == set()
    assert remaining(default) == {job.id for job in kept}
    assert remaining(forever) == {job.id for job in ancient}
    assert not Job.objects.filter(id__in=[job.id for job in gone]).exists()


@time_machine.travel(NOW, tick=False)
def test_it_works_in_batches():
    space = SpaceFactory()
    for _ in range(5):
        finished(space, "completed", timedelta(days=20))

    result = retention.prune_expired(batch_size=2)

    assert result["completed"] == 5
    # 2 + 2 + 1 jobs: the short last batch ends the pass for this group.
    assert result["batches"] == 3
    assert remaining(space) == set()


@time_machine.travel(NOW, tick=False)
def test_each_batch_deletes_at_most_the_batch_size_and_a_stop_request_ends_the_pass():
    space = SpaceFactory()
    for _ in range(5):
        finished(space, "completed", timedelta(days=20))
    batches = []

    def should_stop() -> bool:
        batches.append(Job.objects.filter(space=space).count())
        return len(batches) > 1

    result = retention.prune_expired(batch_size=2, should_stop=should_stop)

    assert result["completed"] == 2
    assert batches == [5, 3]
    assert len(remaining(space)) == 3


@time_machine.travel(NOW, tick=False)
def test_an_exhausted_time_budget_leaves_the_rest_for_the_next_pass():
    space = SpaceFactory()
    finished(space, "completed", timedelta(days=20))

    assert retention.prune_expired(max_seconds=0)["completed"] == 0
    assert len(remaining(space)) == 1
    assert retention.prune_expired()["completed"] == 1


@time_machine.travel(NOW, tick=False)
def test_it_takes_deleted_jobs_out_of_the_space_counts():
    space = SpaceFactory()
    finished(space, "completed", timedelta(days=20))
    finished(space, "completed", timedelta(days=20))
    finished(space, "killed", timedelta(days=40))
    counts = dict.fromkeys(Job.Status.values, 0)
    counts |= {"pending": 4, "completed": 7, "killed": 1, "dead": 3}
    Space.objects.filter(pk=space.pk).update(status_counts=counts)

    retention.prune_expired()

    space.refresh_from_db()
    assert space.status_counts == counts | {"completed": 5, "killed": 0}


@time_machine.travel(NOW, tick=False)
def test_deliveries_of_deleted_jobs_stay_until_their_own_retention():
    space = SpaceFactory()  # 14 / 30 days: deliveries are kept 30 days
    job = finished(space, "completed", timedelta(days=20))
    recent = NotificationDelivery.objects.create(
        space=space, job=job, channel="callback", event="completed"
    )
    old = NotificationDelivery.objects.create(space=space, channel="slack", event="created")
    NotificationDelivery.objects.filter(pk=recent.pk).update(created_at=NOW - timedelta(days=20))
    NotificationDelivery.objects.filter(pk=old.pk).update(created_at=NOW - timedelta(days=31))

    result = retention.prune_expired()

    assert result["deliveries"] == 1
    recent.refresh_from_db()
    assert recent.job_id is None
    assert not NotificationDelivery.objects.filter(pk=old.pk).exists()


@time_machine.travel(NOW, tick=False)
def test_other_apps_hear_of_each_batch_in_its_transaction_before_the_delete():
    space = SpaceFactory()
    jobs = {finished(space, "completed", timedelta(days=20)).id for _ in range(3)}
    heard = []

    def receiver(sender, job_ids, space_ids, **kwargs):
        still_there = set(Job.objects.filter(id__in=job_ids).values_list("id", flat=True))
        assert still_there == set(job_ids) and space_ids == [space.pk]
        heard.append(len(job_ids))
        if len(heard) == 2:
            raise RuntimeError("a receiver failing undoes its batch")

    retention.jobs_pruned.connect(receiver)
    try:
        with pytest.raises(RuntimeError):
            retention.prune_expired(batch_size=2)
    finally:
        retention.jobs_pruned.disconnect(receiver)

    assert heard == [2, 1]
    (left,) = remaining(space)
    assert left in jobs and JobEvent.objects.filter(job_id=left).exists()


@time_machine.travel(NOW, tick=False)
def test_it_never_loads_job_payloads():
    space = SpaceFactory()
    for _ in range(3):
        finished(space, "completed", timedelta(days=20), payload={"big": "x" * 1000})

    with CaptureQueriesContext(connection) as queries:
        retention.prune_expired()

    selects = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert selects
    assert not [sql for sql in selects if "payload" in sql]
    assert not [sql for sql in selects if '"jobs_jobevent"."data"' in sql]
    assert remaining(space) == set()


def test_retention_is_a_registered_scheduler_task():
    task = maintenance.steps["jobs.retention"]

    assert task.func is retention.prune_expired
    assert task.every == 60


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_locked_elsewhere_is_skipped_and_not_counted():
    with time_machine.travel(NOW, tick=False):
        space = SpaceFactory()
        busy = finished(space, "dead", timedelta(days=40))
        idle = finished(space, "dead", timedelta(days=40))
        counts = dict.fromkeys(Job.Status.values, 0) | {"dead": 2}
        Space.objects.filter(pk=space.pk).update(status_counts=counts)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        # A redrive of the dead job, say, holding its row.
        with transaction.atomic():
            Job.objects.select_for_update().get(pk=busy.pk)
            locked.set()
            assert release.wait(10)

    thread = threads.spawn(hold_lock)
    try:
        assert locked.wait(10)
        with time_machine.travel(NOW, tick=False):
            result = retention.prune_expired()
    finally:
        release.set()
    thread.result(30)

    assert result["dead"] == 1
    assert remaining(space) == {busy.id}
    assert not Job.objects.filter(pk=idle.pk).exists()
    space.refresh_from_db()
    assert space.status_counts == counts | {"dead": 1}


@time_machine.travel(NOW, tick=False)
def test_events_are_deleted_in_chunks_with_what_points_at_them(monkeypatch):
    from notifications.models import PendingNotification

    monkeypatch.setattr(retention, "EVENT_CHUNK", 3)
    space = SpaceFactory()
    job = finished(space, "completed", timedelta(days=20))
    for n in range(6):
        JobEvent.objects.create(job=job, space=space, type="progress", status="running", data=n)
    event = JobEvent.objects.filter(job=job).first()
    # The outbox points at events: a row left for a due job goes with it.
    PendingNotification.objects.create(space=space, job=job, job_event=event, channel="slack")

    retention.prune_expired()

    assert remaining(space) == set()
    assert not JobEvent.objects.filter(job_id=job.id).exists()
    assert not PendingNotification.objects.exists()
