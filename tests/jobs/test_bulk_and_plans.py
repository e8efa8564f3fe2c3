from __future__ import annotations

import time

import pytest
from django.db import connection

from jobs import services, wakeup
from jobs.models import Job, JobEvent
from tests.factories import SpaceFactory


def test_bulk_kill_and_bulk_retry_in_batches(space, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 4)
    results = services.create_jobs(space, [{"name": f"j{i}"} for i in range(10)])
    ids = [job.id for job, _ in results]
    services.poll_jobs(space, count=3)
    done = Job.objects.get(pk=ids[9])
    services.kill_job(done)  # already killed: skipped by bulk_kill
    killed = services.bulk_kill(Job.objects.filter(space=space), reason="cleanup")
    assert killed == 9
    assert Job.objects.filter(space=space, status="killed").count() == 10
    event = JobEvent.objects.filter(type="killed", data={"reason": "cleanup"}).first()
    assert event is not None and event.previous_status in ("pending", "delivered")
    assert services.bulk_retry(Job.objects.filter(pk__in=ids[:6])) == 6
    assert Job.objects.filter(space=space, status="pending", attempt_number=1).count() == 6
    assert JobEvent.objects.filter(type="pending", data={"reason": "retry"}).count() == 6


def test_bulk_retry_skips_jobs_that_are_not_dead_or_killed(space):
    job, _ = services.create_job(space, {"name": "a"})
    assert services.bulk_retry(Job.objects.filter(pk=job.pk)) == 0
    assert Job.objects.get(pk=job.pk).events.count() == 1


@pytest.mark.postgres
def test_the_claim_reads_the_partial_queue_index(space):
    # The plan must walk the pending-queue index (cost independent of finished jobs).
    services.create_jobs(space, [{"name": "a"}] * 1000)
    Job.objects.filter(pk__in=Job.objects.filter(space=space).values("pk")[:900]).update(
        status="completed"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
        cursor.execute(
            "EXPLAIN SELECT id FROM jobs_job WHERE space_id = %s AND status = 'pending' "
            "ORDER BY priority DESC, available_at, id LIMIT 10 FOR UPDATE SKIP LOCKED",
            [space.pk],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_pending_queue_idx" in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.redis
def test_a_pending_job_announced_over_redis_wakes_local_waiters(settings):
    import redis

    space_id = 987_654_321
    wakeup._ensure_listener()
    seen = wakeup.generation(space_id)
    client = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + 10
    # The listener subscribes asynchronously: publish until it has heard one.
    while wakeup.generation(space_id) == seen and time.monotonic() < deadline:
        client.publish(wakeup.CHANNEL, str(space_id))
        wakeup.wait(space_id, seen, 0.2)
    assert wakeup.generation(space_id) > seen


def test_paused_space_poll_returns_nothing_even_with_jobs(db):
    from django.utils import timezone

    space = SpaceFactory()
    services.create_job(space, {"name": "a"})
    space.paused_at = timezone.now()
    space.save()
    assert services.poll_jobs(space, count=5) == []
    assert Job.objects.get(space=space).status == "pending"


def test_a_wakeup_publish_with_redis_down_backs_off(settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(wakeup, "_client", None)
    monkeypatch.setattr(wakeup, "_redis_down_until", 0.0)
    calls = []
    real = wakeup._redis

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(wakeup, "_redis", counting)
    seen = wakeup.generation(42)
    wakeup.notify([42])
    wakeup.notify([42])
    assert wakeup.generation(42) == seen + 2  # local waiters are woken regardless
    assert len(calls) == 1  # the second publish skipped Redis while it is away
