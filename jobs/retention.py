"""Retention: finished jobs are deleted, with their events and logs, after a per-space period.

Each space keeps completed jobs for `retention_completed_days` (default 14) and dead or killed
jobs for `retention_failed_days` (default 30), counted from the job's completed_at (the time it
finished, for all three). 0 keeps them forever. A parent whose children still wait (blocked)
is kept until they no longer do, and a member of a group until the group fired
(docs/workflows.md).

Other apps keep rows about jobs (notifications keeps its delivery records) and take part through
two hooks, connected in their AppConfig.ready(), so this module imports none of them:
`jobs_pruned` is sent inside the transaction that deletes a batch of jobs, before the delete,
and a function given to register_pruner() deletes that app's records of a space once they are
older than the longer of the space's two periods.

The scheduler calls prune_expired() about once a minute. Work is done in small transactions of
RETENTION_BATCH_SIZE jobs, so no lock is held for long and a huge backlog drains over several
passes (each pass stops after RETENTION_MAX_SECONDS). Jobs are locked with SKIP LOCKED: a job a
worker or an operator is touching right now (a redrive of a dead job, say) is left for a later
pass, and several scheduler copies never delete the same rows or count them twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from spaces.models import Space

from . import groups, streams, workflows
from .models import Job, JobEvent, JobLog

log = logging.getLogger(__name__)

COMPLETED = (Job.Status.COMPLETED,)
FAILED = (Job.Status.DEAD, Job.Status.KILLED)
# Spaces per query: keeps the IN (...) list, and the plan, small.
SPACE_CHUNK = 500
# Events deleted per statement (a job may have thousands of progress events).
EVENT_CHUNK = 5000

# Sent with `job_ids` and `space_ids` inside the transaction that deletes those jobs, just
# before the delete: a receiver detaches or deletes its own rows that point at them.
jobs_pruned = Signal()

# kind (a key of prune_expired()'s result, "deliveries") -> a function deleting up to LIMIT
# records of SPACE_IDS older than CUTOFF and returning how many it deleted.
Pruner = Callable[[list[int], datetime, int], int]
pruners: dict[str, Pruner] = {}


def register_pruner(kind: str, func: Pruner) -> None:
    """Have FUNC delete KIND records as long as the longer of a space's two periods has passed
    (re-registering replaces)."""
    pruners[kind] = func


def prune_expired(
    now: datetime | None = None,
    *,
    batch_size: int | None = None,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Delete what is due in every space; returns how many rows went, by kind.

    Stops early (the rest waits for the next pass) when MAX_SECONDS have passed or SHOULD_STOP
    returns true between two batches (the scheduler stopping on SIGTERM).
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    budget = settings.RETENTION_MAX_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + budget
    totals: Counter[str] = Counter()

    stopped = False

    def out_of_time() -> bool:
        # Sticky: once the budget is spent or a stop was asked for, the whole pass ends.
        nonlocal stopped
        stopped = stopped or (
            time.monotonic() >= deadline or (should_stop is not None and should_stop())
        )
        return stopped

    job_groups, record_groups = _due_groups(now)
    for statuses, cutoff, space_ids in job_groups:
        for chunk in _chunks(space_ids, SPACE_CHUNK):
            while not out_of_time():
                deleted = _prune_jobs_batch(chunk, statuses, cutoff, batch_size)
                totals.update(deleted)
                totals["batches"] += 1 if deleted else 0
                if sum(deleted.values()) < batch_size:
                    break
    for kind, prune in list(pruners.items()):
        for cutoff, space_ids in record_groups:
            for chunk in _chunks(space_ids, SPACE_CHUNK):
                while not out_of_time():
                    deleted = prune(chunk, cutoff, batch_size)
                    totals[kind] += deleted
                    totals["batches"] += 1 if deleted else 0
                    if deleted < batch_size:
                        break

    kinds = ["completed", "dead", "killed", *pruners]
    result = {kind: totals[kind] for kind in kinds} | {"batches": totals["batches"]}
    if any(result[kind] for kind in kinds):
        # "retention deleted 1 completed, 0 dead, 0 killed jobs and 2 deliveries"
        log.info(
            "retention deleted %d completed, %d dead, %d killed jobs"
            + "".join(f" and %d {kind}" for kind in kinds[3:]),
            *(result[kind] for kind in kinds),
            extra={"retention": result},
        )
    return result


def _due_groups(
    now: datetime,
) -> tuple[list[tuple[tuple[str, ...], datetime, list[int]]], list[tuple[datetime, list[int]]]]:
    """Spaces grouped by retention period, so one query serves every space with the same cutoff.

    Few distinct periods are in use in practice, which keeps the number of queries per pass
    small however many spaces there are.
    """
    completed: dict[int, list[int]] = defaultdict(list)
    failed: dict[int, list[int]] = defaultdict(list)
    records: dict[int, list[int]] = defaultdict(list)  # other apps' records (register_pruner)
    rows = Space.objects.order_by("id").values_list(
        "id", "retention_completed_days", "retention_failed_days"
    )
    for space_id, completed_days, failed_days in rows.iterator(chunk_size=2000):
        if completed_days:
            completed[completed_days].append(space_id)
        if failed_days:
            failed[failed_days].append(space_id)
        if completed_days and failed_days:
            records[max(completed_days, failed_days)].append(space_id)
    job_groups = [
        (COMPLETED, now - timedelta(days=days), ids) for days, ids in sorted(completed.items())
    ] + [(FAILED, now - timedelta(days=days), ids) for days, ids in sorted(failed.items())]
    record_groups = [(now - timedelta(days=days), ids) for days, ids in sorted(records.items())]
    return job_groups, record_groups


def _prune_jobs_batch(
    space_ids: list[int], statuses: Iterable[str], cutoff: datetime, limit: int
) -> Counter[str]:
    """Delete up to LIMIT finished jobs finished before CUTOFF; returns the count by status."""
    with transaction.atomic():
        # Selected and locked inside the transaction: a row that another pass or a redrive
        # holds is skipped, and one that changed status since is no longer matched.
        # job_finished_idx: (space, status, completed_at) WHERE status IN (finished).
        # A parent whose children still wait for it is kept (jobs/workflows.py): they read
        # its result when they run, and their counters count it.
        due = Job.objects.filter(
            space_id__in=space_ids, status__in=list(statuses), completed_at__lt=cutoff
        )
        rows = list(
            groups.without_open_groups(workflows.without_waiting_children(due))
            .order_by()
            .select_for_update(skip_locked=True)
            .values_list("id", "space_id", "status")[:limit]
        )
        if not rows:
            return Counter()
        ids = [row[0] for row in rows]
        # Children first, by job id (jobevent_job_idx, joblog_unique_seq), then the jobs;
        # other apps' rows that point at them are their receivers' business (notification
        # deliveries stay, their job link cleared, until their own retention).
        _delete_events(ids)
        JobLog.objects.filter(job_id__in=ids).delete()
        jobs_pruned.send(sender=Job, job_ids=ids, space_ids=sorted({row[1] for row in rows}))
        # only("id"): the collector must not load 500 payloads just to delete their rows.
        Job.objects.filter(id__in=ids).only("id").delete()

        by_space: dict[int, Counter[str]] = defaultdict(Counter)
        for _, space_id, status in rows:
            by_space[space_id][status] += 1
        # Space rows last and in pk order, so their lock is held only for the end of the
        # transaction and two passes cannot deadlock on them.
        for space_id in sorted(by_space):
            _decrement_counts(space_id, by_space[space_id])

    deleted = Counter(status for _, _, status in rows)
    from lib.metrics import RETENTION_DELETED

    for status, n in deleted.items():
        RETENTION_DELETED.labels(status).inc(n)
    return deleted


def _delete_events(job_ids: list[str]) -> None:
    """Delete the jobs' events a chunk of ids at a time.

    Other tables point at events (the notification outbox), so Django's delete collects the
    rows before deleting them: only their ids, and never more than EVENT_CHUNK at once, however
    many progress events a job wrote.
    """
    while True:
        chunk = list(
            JobEvent.objects.filter(job_id__in=job_ids)
            .order_by()
            .values_list("id", flat=True)[:EVENT_CHUNK]
        )
        if not chunk:
            return
        JobEvent.objects.filter(id__in=chunk).only("id").delete()
        if len(chunk) < EVENT_CHUNK:
            return


def _decrement_counts(space_id: int, deleted: Counter[str]) -> None:
    """Take deleted jobs out of Space.status_counts (the per-status counts streams show).

    Inside the deleting transaction, so the counts and the rows change together.
    """
    streams.adjust_counts(space_id, {status: -n for status, n in deleted.items()})


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
