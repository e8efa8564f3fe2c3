"""Job events: written inside the transition's transaction, fanned out after commit.

`record()` adds the event row in the caller's transaction. When that transaction commits, the
events go to every receiver of `event_committed` (the streams in jobs/, notifications/), each
isolated from the others: a receiver that fails (Redis down, say) never breaks the request
whose transaction already committed, and never stops the other receivers. The rows themselves
are the source of truth, so nothing that fails here is lost: streams replay from them and
notifications keep their own outbox cursor over them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

from .models import Job, JobEvent

log = logging.getLogger(__name__)

# Sent once per committed transaction with `events` (a list of JobEvent, in write order).
event_committed = Signal()


def record(job: Job, type: str, data=None, *, previous_status: str | None = None) -> JobEvent:
    """Write one event for JOB's current state; it is published after commit.

    PREVIOUS_STATUS is the job's status before this transition (None for a new job); pass it
    whenever the status changed, since the per-status counts are derived from it.
    """
    event = JobEvent.objects.create(
        job=job,
        space_id=job.space_id,
        type=type,
        status=job.status,
        previous_status=previous_status,
        data=data,
        attempt_number=job.attempt_number,
    )
    event.job = job
    publish_on_commit([event])
    return event


def record_many(events: Iterable[JobEvent]) -> list[JobEvent]:
    """Bulk-insert prepared events (bulk create); published together after commit."""
    events = list(events)
    if not events:
        return []
    jobs = [e.job for e in events]
    created = JobEvent.objects.bulk_create(events)
    for event, job in zip(created, jobs, strict=True):
        event.job = job
    publish_on_commit(created)
    return created


def build(job: Job, type: str, data=None, *, previous_status: str | None = None) -> JobEvent:
    """An unsaved event for record_many()."""
    return JobEvent(
        job=job,
        space_id=job.space_id,
        type=type,
        status=job.status,
        previous_status=previous_status,
        data=data,
        attempt_number=job.attempt_number,
    )


def publish_on_commit(events: list[JobEvent]) -> None:
    """Publish events the caller stored itself (in one statement with its transition)."""
    transaction.on_commit(lambda: publish(events), robust=True)


def publish(events: list[JobEvent]) -> None:
    for receiver, result in event_committed.send_robust(sender=JobEvent, events=events):
        if isinstance(result, Exception):
            log.warning(
                "event receiver failed",
                extra={
                    "receiver": getattr(receiver, "__qualname__", str(receiver)),
                    "error": repr(result),
                },
            )
