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
from collections.abc import Callable, Iterable

from django.db import transaction
from django.dispatch import Signal

from .models import Job, JobEvent

log = logging.getLogger(__name__)

# --- the vocabulary --------------------------------------------------------------------------
# Every event type the service writes, written down once. Anything else is a worker's custom
# type (POST /jobs/{id}/event). Each user derives its own set from these: the reserved names a
# worker may not send (jobs/services.py), the types metrics count by name (config/metrics.py),
# the types notifications plan on (notifications/outbox.py). tests/jobs/test_events_vocabulary.py
# holds them to what jobs/services.py and the callback transport record.

# Each moves the job to another status ("created": into its first one). "blocked": a job
# cancelled with its parent waits for its parents again, the parent retried (jobs/workflows.py).
TRANSITION_TYPES = frozenset(
    {
        "created",
        "pending",
        "delivered",
        "started",
        "retried",
        "completed",
        "dead",
        "killed",
        "blocked",
    }
)
# The transitions after which a job may be waiting in the queue (then with status pending):
# new, due (its time came, its delivery timed out, a retry by hand) or failed with attempts left.
ENQUEUE_TYPES = frozenset({"created", "pending", "retried"})
# Reports from the worker that leave the job's status as it is.
REPORT_TYPES = frozenset({"progress", "checkpoint", "keepalive", "logs"})
# What became of the job's callback (notifications/transports/callback.py).
CALLBACK_TYPES = frozenset({"callback_sent", "callback_failed"})

# A group's progress (jobs/groups.py): written on the member whose move changed the group's
# counts, with {groupId, name, done, total, ...}; it leaves the member's status alone.
GROUP_TYPES = frozenset({"group.progress"})

LIFECYCLE_TYPES = TRANSITION_TYPES | REPORT_TYPES | CALLBACK_TYPES | GROUP_TYPES

# Names a custom event may not take either: the first message of a job stream ("init") and of a
# space stream ("connected"), which an event of that type would pass for, and "scheduled", the
# name of a status, which no event is written with.
RESERVED_TYPES = LIFECYCLE_TYPES | {"init", "connected", "scheduled"}

# Sent once per committed transaction with `events` (a list of JobEvent, in write order).
event_committed = Signal()

# Called inside the writing transaction, after the job rows and their events are written, with
# the events that move a job into or out of a terminal status (completed, dead, killed); a
# hook's writes commit or roll back with the transition. Groups count their members' ends
# here (jobs/groups.py members_moved, connected in config/apps.py).
terminal_moves: list[Callable[[list[JobEvent]], None]] = []


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
    _after_write([event])
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
    _after_write(created)
    publish_on_commit(created)
    return created


def _after_write(events: list[JobEvent]) -> None:
    """Hand the events that move a job into or out of a terminal status to `terminal_moves`,
    in the transaction that wrote them. Every transition comes through here with its previous
    status, so a hook misses none; an event that moves nothing costs two comparisons."""
    if not terminal_moves:
        return
    moved = [e for e in events if e.previous_status and _terminal_move(e)]
    if moved:
        for hook in terminal_moves:
            hook(moved)


def _terminal_move(event: JobEvent) -> bool:
    return (event.status in Job.TERMINAL) != (event.previous_status in Job.TERMINAL)


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
