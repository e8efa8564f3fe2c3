"""Recurring schedules and flow-control limits for the dashboard pages.

The verbs (fire, trigger, pause, resume; set a limit) are schedules.services and jobs.flow;
creating and changing a schedule row has no service of its own (the API view does it inline),
so `save_schedule` follows the API's rules exactly: the rhythm restarts from now on every
change, names are unique per space, and a space holds at most MAX_SCHEDULES_PER_SPACE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from jobs import flow
from jobs.api.limits import MAX_LIMITS_PER_SPACE
from jobs.models import Job, NameLimit
from schedules import cron
from schedules import services as schedule_services
from schedules.api.views import MAX_SCHEDULES_PER_SPACE
from schedules.models import Schedule
from spaces.models import Space

UPCOMING = 5


class FormError(Exception):
    """A rule checked at save time, shown on the form's FIELD (None: the whole form)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def save_schedule(space: Space, values: dict, schedule: Schedule | None = None) -> Schedule:
    """Create (SCHEDULE None) or change a schedule from ScheduleWriteSerializer's output."""
    if schedule is None:
        if Schedule.objects.filter(space=space).count() >= MAX_SCHEDULES_PER_SPACE:
            raise FormError(None, f"At most {MAX_SCHEDULES_PER_SPACE} schedules per space.")
        schedule = Schedule(space=space)
    schedule.name = values["name"]
    schedule.cron = values["cron"]
    schedule.timezone = values["timezone"]
    schedule.enabled = values["enabled"]
    schedule.overlap = values["overlap"]
    schedule.job_template = values["job"]
    schedule.next_run_at = schedule_services.compute_next(schedule, timezone.now())
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        # Two saves racing on one name: the unique constraint decides.
        raise FormError("name", "This space already has a schedule with this name.") from None
    return schedule


def upcoming(schedule: Schedule, count: int = UPCOMING) -> list[datetime]:
    """The next COUNT ticks from now (none while paused: a paused schedule fires nothing)."""
    if not schedule.enabled:
        return []
    try:
        return cron.upcoming(schedule.cron, schedule.timezone, timezone.now(), count)
    except (ValueError, KeyError):
        # A row written around the validation (a shell, an old import): show no runs, not a 500.
        # croniter's errors are ValueErrors, an unknown zone a KeyError.
        return []


def last_jobs(space: Space, schedules: list[Schedule]) -> dict[str, Job]:
    """The last job of each schedule that still exists (retention may have deleted it)."""
    ids = [s.last_job_id for s in schedules if s.last_job_id]
    if not ids:
        return {}
    rows = Job.objects.filter(space=space, id__in=ids).only("id", "status", "space_id")
    return {job.id: job for job in rows}


@dataclass
class LimitRow:
    limit: NameLimit
    in_flight: int
    # With a per-key limit: keys with jobs in flight now, and the most in flight of one key.
    keys_in_flight: int = 0
    most_of_one_key: int = 0


def limit_rows(space: Space) -> list[LimitRow]:
    """Every limit of SPACE with the jobs of its name delivered or running now.

    The counts use the partial (space, name) index over in-flight jobs that poll uses.
    """
    limits = list(NameLimit.objects.filter(space=space).order_by("name")[:MAX_LIMITS_PER_SPACE])
    counts = dict(
        Job.objects.filter(
            space=space, name__in=[row.name for row in limits], status__in=flow.IN_FLIGHT
        )
        .order_by()
        .values("name")
        .annotate(n=Count("id"))
        .values_list("name", "n")
    )
    keyed = flow.keys_in_flight(
        space.pk, [row.name for row in limits if row.key_concurrency or row.key_rate]
    )
    return [
        LimitRow(limit=row, in_flight=counts.get(row.name, 0), **_key_counts(keyed, row.name))
        for row in limits
    ]


def _key_counts(keyed: dict[str, tuple[int, int]], name: str) -> dict[str, int]:
    keys, most = keyed.get(name, (0, 0))
    return {"keys_in_flight": keys, "most_of_one_key": most}


def set_limit(
    space: Space,
    name: str,
    *,
    concurrency: int | None,
    rate: float | None,
    key_concurrency: int | None = None,
    key_rate: float | None = None,
) -> None:
    """jobs.flow.set_limit with the API's cap on the number of limits per space."""
    exists = NameLimit.objects.filter(space=space, name=name).exists()
    if not exists and NameLimit.objects.filter(space=space).count() >= MAX_LIMITS_PER_SPACE:
        raise FormError(None, f"At most {MAX_LIMITS_PER_SPACE} limits per space.")
    flow.set_limit(
        space,
        name,
        concurrency=concurrency,
        rate=rate,
        key_concurrency=key_concurrency,
        key_rate=key_rate,
    )
