"""The operator's figures, kept up to date by the scheduler, and their reads.

The overview per job name, the per-worker counts and the Prometheus per-name gauges never scan
the jobs table on a page view. `roll_up()`, a maintenance step (config/apps.py), reads each
space's new job events in seq order (the order the sequencer numbered them in, which is commit
order) from a per-space high-water mark (RollupCursor) and folds them into:

- NameRollup, per (space, name, minute): jobs created, completed, failed attempts, dead, and
  run and wait times as counts per fixed log bucket (BOUNDS_MS), which give p50/p95 over any
  range of minutes without keeping samples;
- WorkerRollup, per (space, worker, minute): attempts completed and failed by the worker that
  held the job (Job.worker_id);
- NameState, per (space, name): jobs scheduled, pending, delivered and running now, moved by
  each event's (previous_status -> status) exactly as the sequencer moves the space's counts.
  A space's first roll-up seeds it from the jobs table in one statement (`reseed`).

Why counters for the current state and not a query per name: a pending COUNT(*) per name reads
every pending entry of that name (a million index entries at 1M pending), while the counters
cost one small-table read whatever the depth. The oldest pending job per name is the one figure
read from the jobs table: a skip scan over the name's priorities on the pending name index,
a few index probes per name, not a count.

Every step holds the space's cursor row lock, so several scheduler processes never apply one
event twice. Reads (`overview`, `workers`, `error_groups`, `space_idle`) are here too, beside the
tables they read. docs/dashboard.md explains each figure.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Count,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
)
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from spaces.models import Space

from .events import TRANSITION_TYPES
from .fingerprint import FINGERPRINT_RE, error_template
from .models import (
    Job,
    JobEvent,
    NameLimit,
    NameRollup,
    NameState,
    RollupCursor,
    WorkerRollup,
    WorkerSighting,
)

Status = Job.Status

# Upper bounds of the time buckets, in milliseconds; one more bucket holds everything longer.
BOUNDS_MS = (
    10, 25, 50, 100, 250, 500,
    1_000, 2_500, 5_000, 10_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 1_800_000,
    3_600_000, 7_200_000, 21_600_000, 86_400_000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
# The statuses NameState counts (the finished ones only grow: the rollups count them).
STATE_STATUSES = (Status.SCHEDULED, Status.PENDING, Status.DELIVERED, Status.RUNNING)
# Events read per space per step; the rest is read by the next step.
BATCH = 5000
# How long minute rows are kept (the pages read the last hour).
KEEP = timedelta(days=2)
WINDOW = timedelta(hours=1)
# A space with pending jobs and no worker seen for this long is called out as unattended.
IDLE_AFTER = timedelta(minutes=2)
# The most names the overview lists (by pending, then by the hour's activity).
OVERVIEW_NAMES = 200
# The most priorities the oldest-pending skip scan walks per name.
MAX_PRIORITIES = 50


def minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BOUNDS_MS, ms)


def percentile(hist: list[int], fraction: float) -> float | None:
    """The FRACTION quantile (0..1) of a bucket histogram, in ms, interpolated linearly inside
    its bucket (so within one bucket's width of the true value); None without samples."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = fraction * total
    seen = 0
    for index, n in enumerate(hist):
        if n and seen + n >= rank:
            low = 0 if index == 0 else BOUNDS_MS[index - 1]
            if index >= len(BOUNDS_MS):
                return float(low)  # beyond the last bound: at least that long
            high = BOUNDS_MS[index]
            return low + (high - low) * max(0.0, min(1.0, (rank - seen) / n))
        seen += n
    return float(BOUNDS_MS[-1])


def _add_hist(into: list[int], other: list[int]) -> list[int]:
    out = list(into) + [0] * (BUCKETS - len(into))
    for index, n in enumerate(other[:BUCKETS]):
        out[index] += int(n)
    return out


def _ms(later: datetime, earlier: datetime | None) -> float | None:
    if earlier is None:
        return None
    ms = (later - earlier).total_seconds() * 1000
    return ms if ms >= 0 else None  # the job moved on since (a later attempt): not this one


# --- the maintenance step --------------------------------------------------------------------


def roll_up(limit: int = BATCH) -> dict[str, int]:
    """Apply the new events of every space that has some; {"spaces": n, "events": n}."""
    done = RollupCursor.objects.filter(space_id=OuterRef("pk")).values("seq")[:1]
    behind = list(
        Space.objects.annotate(done=Subquery(done))
        .filter(Q(done__isnull=True) | Q(event_seq__gt=F("done")))
        .values_list("pk", flat=True)
    )
    applied = 0
    for space_id in behind:
        applied += roll_up_space(space_id, limit=limit)
    return {"spaces": len(behind), "events": applied}


def roll_up_space(space_id: int, limit: int = BATCH) -> int:
    """Apply up to LIMIT new transition events of one space; how many were applied."""
    RollupCursor.objects.bulk_create(
        [RollupCursor(space_id=space_id, seq=-1)], ignore_conflicts=True
    )
    with transaction.atomic():
        cursor = RollupCursor.objects.select_for_update().get(space_id=space_id)
        if cursor.seq < 0:
            reseed(space_id, cursor)
            return 0
        upto = Space.objects.filter(pk=space_id).values_list("event_seq", flat=True).first()
        if upto is None or upto <= cursor.seq:
            return 0
        rows = list(
            JobEvent.objects.filter(
                space_id=space_id,
                seq__gt=cursor.seq,
                seq__lte=upto,
                type__in=sorted(TRANSITION_TYPES),
            )
            .order_by("seq")
            .values(
                "seq",
                "type",
                "status",
                "previous_status",
                "created_at",
                "job__name",
                "job__worker_id",
                "job__available_at",
                "job__started_at",
                "job__delivered_at",
            )[:limit]
        )
        _apply(space_id, rows)
        cursor.seq = rows[-1]["seq"] if len(rows) >= limit else upto
        cursor.save(update_fields=["seq", "updated_at"])
        return len(rows)


@dataclass
class _NameMinute:
    created: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    run_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    run_ms_sum: int = 0
    wait_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    wait_ms_sum: int = 0


def _apply(space_id: int, rows: list[dict[str, Any]]) -> None:
    states: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATE_STATUSES, 0))
    names: dict[tuple[str, datetime], _NameMinute] = defaultdict(_NameMinute)
    workers: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        name, type, at = row["job__name"], row["type"], row["created_at"]
        before, after = row["previous_status"], row["status"]
        if type == "created":
            before = None
        elif not before or before == after:
            before = after = None
        if before in STATE_STATUSES:
            states[name][before] -= 1
        if after in STATE_STATUSES:
            states[name][after] += 1
        fig = names[(name, minute(at))]
        if type == "created":
            fig.created += 1
        elif type in ("delivered", "started") and row["previous_status"] == Status.PENDING:
            # Handed out: the wait is from when the job became available to now.
            wait = _ms(at, row["job__available_at"])
            if wait is not None:
                fig.wait_hist[bucket_of(wait)] += 1
                fig.wait_ms_sum += int(wait)
        elif type in ("completed", "retried", "dead"):
            ok = type == "completed"
            fig.completed += ok
            fig.failed += not ok
            fig.dead += type == "dead"
            # Run time: from the ack (or, completing a job never acked, from its delivery).
            if row["previous_status"] == Status.RUNNING:
                run = _ms(at, row["job__started_at"])
            elif ok:
                run = _ms(at, row["job__delivered_at"])
            else:
                run = None
            if run is not None:
                fig.run_hist[bucket_of(run)] += 1
                fig.run_ms_sum += int(run)
            worker = row["job__worker_id"]
            if worker and row["previous_status"] in (Status.DELIVERED, Status.RUNNING):
                workers[(worker, minute(at))][0 if ok else 1] += 1
    _store_states(space_id, states)
    _store_names(space_id, names)
    _store_workers(space_id, workers)


def _store_states(space_id: int, states: dict[str, dict[str, int]]) -> None:
    if not states:
        return
    existing = {s.name: s for s in NameState.objects.filter(space_id=space_id, name__in=states)}
    new, changed = [], []
    for name, deltas in states.items():
        row = existing.get(name) or NameState(space_id=space_id, name=name)
        for status, delta in deltas.items():
            setattr(row, status, getattr(row, status) + delta)
        (changed if row.pk else new).append(row)
    NameState.objects.bulk_create(new)
    NameState.objects.bulk_update(changed, list(STATE_STATUSES))


def _store_names(space_id: int, figures: dict[tuple[str, datetime], _NameMinute]) -> None:
    if not figures:
        return
    buckets = {bucket for _, bucket in figures}
    existing = {
        (r.name, r.bucket): r
        for r in NameRollup.objects.filter(
            space_id=space_id, bucket__in=buckets, name__in={n for n, _ in figures}
        )
    }
    new, changed = [], []
    for (name, bucket), fig in figures.items():
        row = existing.get((name, bucket)) or NameRollup(
            space_id=space_id, name=name, bucket=bucket
        )
        row.created += fig.created
        row.completed += fig.completed
        row.failed += fig.failed
        row.dead += fig.dead
        row.run_hist = _add_hist(row.run_hist or [], fig.run_hist)
        row.run_ms_sum += fig.run_ms_sum
        row.wait_hist = _add_hist(row.wait_hist or [], fig.wait_hist)
        row.wait_ms_sum += fig.wait_ms_sum
        (changed if row.pk else new).append(row)
    NameRollup.objects.bulk_create(new)
    NameRollup.objects.bulk_update(
        changed,
        [
            "created",
            "completed",
            "failed",
            "dead",
            "run_hist",
            "run_ms_sum",
            "wait_hist",
            "wait_ms_sum",
        ],
    )


def _store_workers(space_id: int, figures: dict[tuple[str, datetime], list[int]]) -> None:
    if not figures:
        return
    existing = {
        (r.worker_id, r.bucket): r
        for r in WorkerRollup.objects.filter(
            space_id=space_id,
            bucket__in={b for _, b in figures},
            worker_id__in={w for w, _ in figures},
        )
    }
    new, changed = [], []
    for (worker, bucket), (completed, failed) in figures.items():
        row = existing.get((worker, bucket)) or WorkerRollup(
            space_id=space_id, worker_id=worker, bucket=bucket
        )
        row.completed += completed
        row.failed += failed
        (changed if row.pk else new).append(row)
    WorkerRollup.objects.bulk_create(new)
    WorkerRollup.objects.bulk_update(changed, ["completed", "failed"])


def reseed(space_id: int, cursor: RollupCursor | None = None) -> None:
    """Recount a space's NameState from the jobs table and set its cursor to match (first use,
    or a repair). One statement, hence one snapshot: the jobs per (name, status), minus the
    moves of events committed but not numbered yet (they are applied when numbered), and the
    space's last numbered seq. Costs a scan of the space's unfinished jobs."""
    jobs, events = Job._meta.db_table, JobEvent._meta.db_table
    spaces = Space._meta.db_table
    active = ", ".join(f"'{s}'" for s in STATE_STATUSES)
    moved = "(e.previous_status IS NOT NULL AND e.previous_status <> e.status)"
    sql = f"""
        SELECT name, status, SUM(n) FROM (
            SELECT name, status, COUNT(*) AS n FROM {jobs}
             WHERE space_id = %s AND status IN ({active}) GROUP BY name, status
            UNION ALL
            SELECT j.name, e.status, -COUNT(*) FROM {events} e JOIN {jobs} j ON j.id = e.job_id
             WHERE e.space_id = %s AND e.seq IS NULL AND (e.type = 'created' OR {moved})
             GROUP BY j.name, e.status
            UNION ALL
            SELECT j.name, e.previous_status, COUNT(*) FROM {events} e JOIN {jobs} j
                ON j.id = e.job_id
             WHERE e.space_id = %s AND e.seq IS NULL AND e.type <> 'created' AND {moved}
             GROUP BY j.name, e.previous_status
            UNION ALL
            SELECT NULL, NULL, event_seq FROM {spaces} WHERE id = %s
        ) AS moves GROUP BY name, status
    """  # noqa: S608 - table names from model metadata, statuses from the model's choices
    with connection.cursor() as c:
        c.execute(sql, [space_id, space_id, space_id, space_id])
        rows = c.fetchall()
    seq = 0
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATE_STATUSES, 0))
    for name, status, n in rows:
        if name is None and status is None:
            seq = int(n or 0)
        elif status in STATE_STATUSES:
            counts[name][status] = max(0, int(n))
    with transaction.atomic():
        if cursor is None:
            RollupCursor.objects.bulk_create(
                [RollupCursor(space_id=space_id, seq=-1)], ignore_conflicts=True
            )
            cursor = RollupCursor.objects.select_for_update().get(space_id=space_id)
        NameState.objects.filter(space_id=space_id).exclude(name__in=counts).update(
            **dict.fromkeys(STATE_STATUSES, 0)
        )
        existing = {s.name: s for s in NameState.objects.filter(space_id=space_id)}
        new, changed = [], []
        for name, by_status in counts.items():
            row = existing.get(name) or NameState(space_id=space_id, name=name)
            for status, n in by_status.items():
                setattr(row, status, n)
            (changed if row.pk else new).append(row)
        NameState.objects.bulk_create(new)
        NameState.objects.bulk_update(changed, list(STATE_STATUSES))
        cursor.seq = seq
        cursor.save(update_fields=["seq", "updated_at"])


def prune(now: datetime | None = None) -> dict[str, int]:
    """Drop minute rows older than KEEP, and names with nothing left in them."""
    cutoff = (now or timezone.now()) - KEEP
    names, _ = NameRollup.objects.filter(bucket__lt=cutoff).delete()
    workers, _ = WorkerRollup.objects.filter(bucket__lt=cutoff).delete()
    sightings, _ = WorkerSighting.objects.filter(last_seen_at__lt=cutoff).delete()
    return {"names": names, "workers": workers, "sightings": sightings}


# --- reads: the overview per name ------------------------------------------------------------


@dataclass
class NameFigures:
    name: str
    pending: int = 0
    scheduled: int = 0
    delivered: int = 0
    running: int = 0
    oldest_pending_at: datetime | None = None
    oldest_pending_seconds: float | None = None
    created: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    run_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    wait_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    run_ms_sum: int = 0
    wait_ms_sum: int = 0
    concurrency: int | None = None
    rate: float | None = None

    @property
    def in_flight(self) -> int:
        return self.delivered + self.running

    @property
    def failure_rate(self) -> float | None:
        """Failed attempts over finished attempts in the window (None without any)."""
        finished = self.completed + self.failed
        return self.failed / finished if finished else None

    @property
    def run_p50(self) -> float | None:
        return percentile(self.run_hist, 0.5)

    @property
    def run_p95(self) -> float | None:
        return percentile(self.run_hist, 0.95)

    @property
    def wait_p50(self) -> float | None:
        return percentile(self.wait_hist, 0.5)

    @property
    def wait_p95(self) -> float | None:
        return percentile(self.wait_hist, 0.95)

    @property
    def limit_use(self) -> float | None:
        """In flight over the concurrency limit (None without one)."""
        return self.in_flight / self.concurrency if self.concurrency else None


def hour_figures(space_ids: list[int], now: datetime) -> dict[tuple[int, str], NameFigures]:
    """The last hour's NameRollup rows summed per (space, name): the minute now and the 59
    before it."""
    since = minute(now) - WINDOW + timedelta(minutes=1)
    out: dict[tuple[int, str], NameFigures] = {}
    for row in NameRollup.objects.filter(space_id__in=space_ids, bucket__gte=since).values(
        "space_id",
        "name",
        "created",
        "completed",
        "failed",
        "dead",
        "run_hist",
        "wait_hist",
        "run_ms_sum",
        "wait_ms_sum",
    ):
        fig = out.setdefault((row["space_id"], row["name"]), NameFigures(name=row["name"]))
        for key in ("created", "completed", "failed", "dead", "run_ms_sum", "wait_ms_sum"):
            setattr(fig, key, getattr(fig, key) + row[key])
        fig.run_hist = _add_hist(fig.run_hist, row["run_hist"] or [])
        fig.wait_hist = _add_hist(fig.wait_hist, row["wait_hist"] or [])
    return out


def states(space_ids: list[int]) -> dict[tuple[int, str], NameState]:
    return {(s.space_id, s.name): s for s in NameState.objects.filter(space_id__in=space_ids)}


def overview(space: Space, now: datetime | None = None) -> list[NameFigures]:
    """Per job name of SPACE: now (pending, oldest pending, in flight), the last hour
    (throughput, failures, p50/p95 run and wait time) and the flow-control limit.

    Reads NameState and the hour's NameRollup rows (at most 60 per name), the limits, and one
    skip scan per name with pending jobs; never counts jobs."""
    now = now or timezone.now()
    figures = {name: fig for (_, name), fig in hour_figures([space.pk], now).items()}
    for (_, name), state in states([space.pk]).items():
        fig = figures.setdefault(name, NameFigures(name=name))
        for status in STATE_STATUSES:
            setattr(fig, status, max(0, getattr(state, status)))
    for limit in NameLimit.objects.filter(space=space):
        fig = figures.setdefault(limit.name, NameFigures(name=limit.name))
        fig.concurrency, fig.rate = limit.concurrency, limit.rate
    rows = [
        f
        for f in figures.values()
        if f.pending
        or f.scheduled
        or f.in_flight
        or f.created
        or f.completed
        or f.failed
        or f.concurrency
        or f.rate
    ]
    rows.sort(key=lambda f: (-f.pending, -(f.completed + f.failed + f.created), f.name))
    rows = rows[:OVERVIEW_NAMES]
    for fig in rows:
        if fig.pending:
            fig.oldest_pending_at = oldest_pending(space.pk, fig.name)
            if fig.oldest_pending_at is not None:
                fig.oldest_pending_seconds = max(0.0, (now - fig.oldest_pending_at).total_seconds())
    return rows


# Oldest pending job of one name: the pending name index is ordered by priority first, so
# walk the name's distinct priorities (a recursive skip scan, one probe each) and take the
# first available_at under each: cost grows with the priorities in use, not with the jobs.
_OLDEST_SQL = """
WITH RECURSIVE prio(p, n) AS (
    SELECT (SELECT priority FROM {table}
            WHERE space_id = %(space)s AND name = %(name)s AND status = 'pending'
            ORDER BY priority DESC LIMIT 1), 1
    UNION ALL
    SELECT (SELECT priority FROM {table}
            WHERE space_id = %(space)s AND name = %(name)s AND status = 'pending'
              AND priority < prio.p
            ORDER BY priority DESC LIMIT 1), n + 1
    FROM prio WHERE prio.p IS NOT NULL AND n < %(limit)s
)
SELECT MIN((SELECT available_at FROM {table}
             WHERE space_id = %(space)s AND name = %(name)s AND status = 'pending'
               AND priority = prio.p
             ORDER BY available_at LIMIT 1))
FROM prio WHERE prio.p IS NOT NULL
"""


def oldest_pending(space_id: int, name: str) -> datetime | None:
    sql = _OLDEST_SQL.format(table=connection.ops.quote_name(Job._meta.db_table))
    with connection.cursor() as c:
        c.execute(sql, {"space": space_id, "name": name, "limit": MAX_PRIORITIES})
        row = c.fetchone()
    value = row[0] if row else None
    if isinstance(value, str):
        value = parse_datetime(value)  # SQLite: text from a scalar subquery
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


# --- reads: workers --------------------------------------------------------------------------

# The most workers a page lists (the most recently seen), and held job ids shown per worker.
WORKERS_SHOWN = 200
HELD_SHOWN = 5


@dataclass
class WorkerFigures:
    worker_id: str
    key_name: str | None
    key_prefix: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    seconds_since_seen: float
    held: int = 0
    held_ids: list[str] = field(default_factory=list)
    completed: int = 0
    failed: int = 0

    @property
    def idle(self) -> bool:
        return self.seconds_since_seen > IDLE_AFTER.total_seconds()


def workers(space: Space, now: datetime | None = None) -> list[WorkerFigures]:
    """The workers seen polling SPACE, most recent first: last seen, the jobs each holds now
    (delivered or running, through the held-jobs index), and attempts completed and failed in
    the last hour (WorkerRollup)."""
    now = now or timezone.now()
    sightings = list(
        WorkerSighting.objects.filter(space=space)
        .select_related("key")
        .order_by("-last_seen_at", "worker_id")[:WORKERS_SHOWN]
    )
    names = [s.worker_id for s in sightings]
    held: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = {}
    if names:
        counts = _held_counts(space.pk, names)
        in_flight = Job.objects.filter(
            space=space, worker_id__in=names, status__in=(Status.DELIVERED, Status.RUNNING)
        )
        for worker, job_id in in_flight.order_by("-id").values_list("worker_id", "id")[
            : HELD_SHOWN * len(names)
        ]:
            if len(held[worker]) < HELD_SHOWN:
                held[worker].append(job_id)
    since = minute(now) - WINDOW + timedelta(minutes=1)
    hour = {
        row["worker_id"]: row
        for row in WorkerRollup.objects.filter(space=space, bucket__gte=since, worker_id__in=names)
        .values("worker_id")
        .annotate(completed=Sum("completed"), failed=Sum("failed"))
    }
    out = []
    for s in sightings:
        row = hour.get(s.worker_id, {})
        out.append(
            WorkerFigures(
                worker_id=s.worker_id,
                key_name=s.key.name if s.key else None,
                key_prefix=s.key.prefix if s.key else None,
                first_seen_at=s.first_seen_at,
                last_seen_at=s.last_seen_at,
                seconds_since_seen=max(0.0, (now - s.last_seen_at).total_seconds()),
                held=counts.get(s.worker_id, 0),
                held_ids=held.get(s.worker_id, []),
                completed=int(row.get("completed") or 0),
                failed=int(row.get("failed") or 0),
            )
        )
    return out


# Jobs held are counted up to this many per worker (shown as "1000+" beyond), so a worker
# holding a flood costs a bounded index range, not a count of all it holds.
HELD_CAP = 1000


def _held_counts(space_id: int, names: list[str]) -> dict[str, int]:
    """Jobs delivered or running per worker of NAMES, each count capped at HELD_CAP + 1: one
    statement, a LIMITed probe of the held-jobs index per worker."""
    jobs, sightings = Job._meta.db_table, WorkerSighting._meta.db_table
    marks = ", ".join(["%s"] * len(names))
    sql = f"""
        SELECT s.worker_id, (
            SELECT COUNT(*) FROM {jobs} j WHERE j.id IN (
                SELECT h.id FROM {jobs} h
                 WHERE h.space_id = s.space_id AND h.worker_id = s.worker_id
                   AND h.status IN ('delivered', 'running')
                 LIMIT %s))
          FROM {sightings} s WHERE s.space_id = %s AND s.worker_id IN ({marks})
    """  # noqa: S608 - table names from model metadata, values are parameters
    with connection.cursor() as c:
        c.execute(sql, [HELD_CAP + 1, space_id, *names])
        return {worker: int(n) for worker, n in c.fetchall()}


def last_seen(space_ids: list[int]) -> dict[int, datetime]:
    """The latest sighting of any worker, per space (one grouped read on the sighting index)."""
    rows = (
        WorkerSighting.objects.filter(space_id__in=space_ids)
        .values("space_id")
        .annotate(at=Max("last_seen_at"))
    )
    return {row["space_id"]: row["at"] for row in rows}


@dataclass
class Idle:
    pending: int
    last_seen_at: datetime | None


def space_idle(
    space: Space, pending: int, seen_at: datetime | None, now: datetime | None = None
) -> Idle | None:
    """An Idle warning when SPACE has PENDING jobs and no worker was seen for IDLE_AFTER."""
    now = now or timezone.now()
    if pending <= 0 or space.paused_at is not None:
        return None
    if seen_at is not None and now - seen_at <= IDLE_AFTER:
        return None
    return Idle(pending=pending, last_seen_at=seen_at)


# --- reads: error groups ---------------------------------------------------------------------

GROUPS_SHOWN = 100
NAMES_SHOWN = 10


@dataclass
class ErrorGroup:
    fingerprint: str
    count: int
    dead: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    sample_job_id: str
    sample_error: str = ""
    template: str = ""
    names: list[str] = field(default_factory=list)


def group_jobs(space: Space, fingerprint: str) -> QuerySet[Job]:
    """The jobs of one error group: their last failure has FINGERPRINT, and they have not
    completed since (on the error group index)."""
    return Job.objects.filter(space=space, error_fingerprint=fingerprint).exclude(
        status=Status.COMPLETED
    )


def valid_fingerprint(value: str) -> bool:
    return bool(FINGERPRINT_RE.match(value or ""))


class _DistinctNames(Aggregate):
    """The distinct values of a text column in a group: an array on PostgreSQL, a JSON array
    (text) on SQLite; read with `_names_list`."""

    function = "ARRAY_AGG"
    template = "%(function)s(DISTINCT %(expressions)s)"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra)


def _names_list(value) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return sorted(value or [])[:NAMES_SHOWN]


def error_groups(space: Space, *, limit: int = GROUPS_SHOWN) -> list[ErrorGroup]:
    """Failures of SPACE grouped by fingerprint, the most recently seen first: how many jobs,
    how many dead, the job names, first and last seen, and a sample job with its error. An
    indexed GROUP BY over the failed jobs (job_error_group_idx), not a scan of error texts."""
    rows = list(
        Job.objects.filter(space=space)
        .exclude(error_fingerprint="")
        .exclude(status=Status.COMPLETED)
        .values("error_fingerprint")
        .annotate(
            count=Count("id"),
            dead=Count("id", filter=Q(status=Status.DEAD)),
            first=Min("failed_at"),
            last=Max("failed_at"),
            sample=Max("id"),
            names=_DistinctNames("name"),
        )
        .order_by("-last", "error_fingerprint")[:limit]
    )
    if not rows:
        return []
    samples = {
        job["id"]: job["last_error"]
        for job in Job.objects.filter(id__in=[r["sample"] for r in rows]).values("id", "last_error")
    }
    out = []
    for r in rows:
        error = samples.get(r["sample"], "")
        out.append(
            ErrorGroup(
                fingerprint=r["error_fingerprint"],
                count=r["count"],
                dead=r["dead"],
                first_seen_at=r["first"],
                last_seen_at=r["last"],
                sample_job_id=r["sample"],
                sample_error=error,
                template=error_template(error),
                names=_names_list(r["names"]),
            )
        )
    return out
