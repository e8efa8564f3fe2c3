"""Firing recurring schedules: exactly one job per due tick, however many schedulers run.

A tick fires in one transaction that (1) advances `next_run_at` with a compare-and-swap on its
old value and (2) creates the job with an idempotency key derived from the schedule and tick.
A second scheduler racing on the same schedule blocks on the row until the first commits, then
its compare-and-swap matches nothing and it moves on; the idempotency key is a second fence
should two ever get that far.

Missed ticks (the scheduler was down) are not replayed one by one: only the latest due tick
fires, and the schedule continues from the next tick after now.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone
from ulid import ULID

from jobs import services as job_services
from jobs.models import Job
from lib import errors

from . import cron
from .models import Schedule

log = logging.getLogger(__name__)

# Schedules fired per scheduler pass; the rest wait for the next pass (about a second later).
TICK_BATCH = 100


def idempotency_key(schedule: Schedule, tick: datetime) -> str:
    return f"schedule:{schedule.name}:{tick.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def compute_next(schedule: Schedule, after: datetime) -> datetime:
    return cron.next_after(schedule.cron, schedule.timezone, after)


def template_data(schedule: Schedule) -> dict:
    """The job template validated as an API create body (snake_case, as create_job takes it)."""
    from jobs.api.serializers import JobCreateSerializer

    serializer = JobCreateSerializer(data=schedule.job_template)
    if not serializer.is_valid():
        raise errors.validation_error(serializer.errors, "The schedule's job template is invalid")
    return dict(serializer.validated_data)


def _previous_unfinished(schedule: Schedule) -> bool:
    if not schedule.last_job_id:
        return False
    return Job.objects.filter(pk=schedule.last_job_id, status__in=Job.ACTIVE).exists()


def _create(schedule: Schedule, key: str) -> Job:
    data = template_data(schedule)
    data["idempotency_key"] = key
    data["scheduled_for"] = None
    job, _ = job_services.create_job(schedule.space, data)
    return job


def fire_due(schedule: Schedule, now: datetime) -> Job | None:
    """Fire SCHEDULE's latest due tick if this caller wins it; the job made, or None."""
    old_next = schedule.next_run_at
    if old_next is None or old_next > now:
        return None
    tick = max(old_next, cron.latest_at_or_before(schedule.cron, schedule.timezone, now))
    new_next = compute_next(schedule, now)
    with transaction.atomic():
        won = Schedule.objects.filter(pk=schedule.pk, enabled=True, next_run_at=old_next).update(
            next_run_at=new_next, updated_at=now
        )
        if not won:
            return None
        schedule.next_run_at = new_next
        if schedule.overlap == Schedule.Overlap.SKIP and _previous_unfinished(schedule):
            Schedule.objects.filter(pk=schedule.pk).update(last_skipped_at=tick)
            log.info(
                "schedule tick skipped (previous job unfinished)", extra={"schedule": schedule.name}
            )
            return None
        job = _create(schedule, idempotency_key(schedule, tick))
        Schedule.objects.filter(pk=schedule.pk).update(last_run_at=tick, last_job_id=job.id)
        schedule.last_run_at, schedule.last_job_id = tick, job.id
        return job


def tick(now: datetime | None = None) -> int:
    """One scheduler pass: fire every due schedule. Returns the number of jobs created."""
    now = now or timezone.now()
    due = list(
        Schedule.objects.select_related("space")
        .filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at")[:TICK_BATCH]
    )
    made = 0
    for schedule in due:
        try:
            if fire_due(schedule, now) is not None:
                made += 1
        except Exception:
            # One broken template must not stop the other schedules.
            log.exception("schedule failed to fire", extra={"schedule": schedule.name})
    return made


def trigger_now(schedule: Schedule) -> Job:
    """Run the schedule's job now, outside its cron rhythm (next_run_at is unchanged)."""
    now = timezone.now()
    with transaction.atomic():
        job = _create(schedule, f"schedule:{schedule.name}:manual:{ULID()}")
        Schedule.objects.filter(pk=schedule.pk).update(last_run_at=now, last_job_id=job.id)
        schedule.last_run_at, schedule.last_job_id = now, job.id
    return job


def pause(schedule: Schedule) -> None:
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
    schedule.enabled = False


def resume(schedule: Schedule) -> None:
    """Enable again, continuing from the next tick after now (paused ticks are not replayed)."""
    schedule.enabled = True
    schedule.next_run_at = compute_next(schedule, timezone.now())
    Schedule.objects.filter(pk=schedule.pk).update(enabled=True, next_run_at=schedule.next_run_at)
