"""Reads over the jobs tables, one home for every surface: the API, the dashboard, the streams
and the metrics each parse their own input and render their own pages, and ask here.

- Job lists: filters, text search and keyset pages (`jobs_matching`, `job_page`).
- Log lines by seq (`log_page`).
- Jobs per status (`stored_counts`, `counts_from_jobs`, `space_counts`).
- The queue's oldest pending job (`oldest_pending`).
- Events as JSON: in a job's history (`event_json`) and as stream envelopes (`envelope`,
  `stored_envelopes`).

Every query here is bounded: lists walk the (space, [status | name], -id) indexes with a keyset
cursor (OFFSET only as far as the API allows, never COUNT(*) over the table), text search scans
at most SEARCH_WINDOW of the newest jobs below the cursor for names and payloads (errors: every
job, through a trigram index on PostgreSQL), and counts come from the counters
the event sequencer keeps on the space row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from spaces.models import Space

from .models import Job, JobEvent, JobLog

STATUSES: tuple[str, ...] = tuple(Job.Status.values)
# Statuses added after spaces first stored their counts: counts written before one existed
# (by an older process during a deploy, or before migration 0008 filled it in) read 0 for it,
# since no job could have it then, rather than sending the space to a recount.
LATER_STATUSES = frozenset({Job.Status.BLOCKED})


def attempt(stored: int) -> int:
    """attemptNumber as the API, events, callbacks and streams speak it: 0 on the first attempt.
    The attempt_number columns count from 1 (the dashboard shows them so, "1/4")."""
    return stored - 1


def iso(value: datetime | None) -> str | None:
    """A timestamp as the API and the streams write it: UTC, with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- job lists -------------------------------------------------------------------------------

# How many of the newest jobs (below the cursor) one search request looks through for a name
# or payload match: a bounded index range scan plus a filter over at most this many rows.
# Errors are matched in every job (an index on PostgreSQL; docs/dashboard.md).
SEARCH_WINDOW = 5000
# Crockford base32, the alphabet of ULIDs.
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$", re.IGNORECASE)


@dataclass
class JobPage:
    jobs: list[Job]
    # Cursors: `older` pages to older jobs (the API's nextCursor), `newer` to newer ones.
    older: str | None = None
    newer: str | None = None
    # For searches: how far back this page looked when it found fewer than a page of matches.
    searched_down_to: datetime | None = None
    notes: list[str] = field(default_factory=list)


def jobs_matching(
    space: Space, *, statuses: Sequence[str] | None = None, name: str = "", text: str = ""
) -> QuerySet[Job]:
    """The jobs of SPACE with one of STATUSES (None: any), named NAME, and matching TEXT.

    Status and name are served by the space list indexes. TEXT is an exact job id, or text in
    the name, payload or error; unbounded here (bulk actions on "everything matching"):
    `job_page` searches a bounded window instead.
    """
    qs = _one_of(Job.objects.filter(space=space), "status", statuses)
    if name:
        qs = qs.filter(name=name)
    if text:
        qs = qs.annotate(payload_text=Cast("payload", TextField())).filter(_text_q(text))
    return qs


def _one_of(qs: QuerySet, field: str, values: Sequence[str] | None) -> QuerySet:
    """QS where FIELD is one of VALUES (None: any value; empty: none)."""
    if values is None:
        return qs
    if len(values) == 1:
        return qs.filter(**{field: values[0]})
    return qs.filter(**{f"{field}__in": values})


def _text_q(text: str) -> Q:
    if ULID_RE.match(text):
        return Q(id=text.upper())
    return Q(name__icontains=text) | Q(payload_text__icontains=text) | Q(last_error__icontains=text)


def job_page(
    space: Space,
    *,
    limit: int,
    statuses: Sequence[str] | None = None,
    name: str = "",
    text: str = "",
    before: str = "",
    after: str = "",
    offset: int = 0,
) -> JobPage:
    """One page of LIMIT jobs, newest first, in one query (a search: two at most).

    BEFORE pages to older jobs (ids below it, after skipping OFFSET), AFTER to newer ones;
    both are job ids, which sort by creation time.
    """
    base = jobs_matching(space, statuses=statuses, name=name)
    if text:
        return _search_page(base, text, before=before, size=limit)
    if after:
        # Newer page: walk up from the cursor, then show newest first like every page.
        rows = list(base.filter(id__gt=after).order_by("id")[: limit + 1])
        more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        return JobPage(
            jobs=rows,
            older=rows[-1].id if rows else after,
            newer=rows[0].id if rows and more_newer else None,
        )
    # Keyset paging on the time-sortable id: stays fast at any depth.
    qs = base.filter(id__lt=before) if before else base
    rows = list(qs.order_by("-id")[offset : offset + limit + 1])
    has_older = len(rows) > limit
    rows = rows[:limit]
    return JobPage(
        jobs=rows,
        older=rows[-1].id if rows and has_older else None,
        newer=rows[0].id if rows and before else None,
    )


def _search_page(base: QuerySet[Job], text: str, *, before: str, size: int) -> JobPage:
    if ULID_RE.match(text):
        return JobPage(jobs=list(base.filter(id=text.upper())))
    below = base.filter(id__lt=before) if before else base
    # The newest SEARCH_WINDOW ids below the cursor, as a subquery (LIMIT inside IN works on
    # PostgreSQL and SQLite); the name and payload filter then runs over those rows only.
    window = below.order_by("-id").values("id")[:SEARCH_WINDOW]
    matches = (
        Job.objects.filter(id__in=window)
        .annotate(payload_text=Cast("payload", TextField()))
        .filter(_text_q(text))
        .order_by("-id")
    )
    rows = list(matches[: size + 1])
    # Errors are searched in every job below the cursor, not the window: on PostgreSQL through
    # the trigram index on UPPER(last_error) (migration 0007), on SQLite by a LIKE scan.
    found = {job.id for job in rows}
    rows += [
        job
        for job in below.filter(last_error__icontains=text).order_by("-id")[: size + 1]
        if job.id not in found
    ]
    rows.sort(key=lambda job: job.id, reverse=True)
    if len(rows) > size:
        rows = rows[:size]
        return JobPage(jobs=rows, older=rows[-1].id, newer=None)
    # Fewer than a page matched: continue below the window if the window was full. The two
    # ids around the window's edge: the oldest scanned and the first one left out.
    edge = list(below.order_by("-id").values_list("id", "created_at")[SEARCH_WINDOW - 1 :][:2])
    if len(edge) < 2:
        return JobPage(jobs=rows)
    last_id, last_created = edge[0]
    if rows and rows[-1].id < last_id:
        # An error matched further back: every error match is on this page already, so the
        # next one continues below it (names and payloads in between are not searched).
        last_id, last_created = rows[-1].id, rows[-1].created_at
    return JobPage(
        jobs=rows,
        older=last_id,
        searched_down_to=last_created,
        notes=[
            f"Searched names and payloads in the newest {SEARCH_WINDOW} jobs here, "
            "errors in every job."
        ],
    )


# --- logs ------------------------------------------------------------------------------------


def log_page(
    job: Job,
    *,
    limit: int,
    after: int | None = None,
    before: int | None = None,
    levels: Sequence[str] | None = None,
    text: str = "",
) -> tuple[list[JobLog], bool]:
    """Up to LIMIT log lines of JOB, oldest first, and whether there are more beyond them.

    With AFTER and no BEFORE: the lines with seq > AFTER (the live tail, or paging forward).
    Otherwise the newest lines below BEFORE (when given) and above AFTER (when given): paging
    back through older lines. LEVELS (None: any) and TEXT (in the message) filter.
    """
    qs = _one_of(JobLog.objects.filter(job=job), "level", levels)
    if text:
        qs = qs.filter(message__icontains=text)
    if after:
        qs = qs.filter(seq__gt=after)
    if before is None and after is not None:
        rows = list(qs.order_by("seq")[: limit + 1])
        return rows[:limit], len(rows) > limit
    if before is not None:
        qs = qs.filter(seq__lt=before)
    rows = list(qs.order_by("-seq")[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


# --- jobs per status -------------------------------------------------------------------------


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def stored_counts(counts: Any, *, partial: bool = False) -> dict[str, int] | None:
    """A space's status_counts as {status: n} for every status, or None while not known.

    Known means an integer for every status, as the sequencer writes them (it fills them in on
    the space's first event). With PARTIAL any non-empty object will do and a missing status
    reads 0: the dashboard shows what is there rather than count again.
    """
    if not isinstance(counts, dict):
        return None
    if partial:
        if not counts:
            return None
        return {status: int(counts.get(status, 0) or 0) for status in STATUSES}
    known = {
        status: counts.get(status, 0 if status in LATER_STATUSES else None) for status in STATUSES
    }
    if not all(isinstance(n, int) for n in known.values()):
        return None
    return {status: int(n) for status, n in known.items()}


def counts_from_jobs(space_id: int) -> dict[str, int]:
    """Jobs per status as the sequencer will see them once every stored event is numbered.

    The Job table already reflects committed events that are not numbered yet; the sequencer
    will still apply their moves, so they are taken back out here. Both parts are read in ONE
    statement, hence from one snapshot: a transition committing in between cannot be counted
    on one side only. Costs a scan of the space's jobs: for repairs and first use only.
    """
    jobs = Job._meta.db_table
    events = JobEvent._meta.db_table
    moved = "(previous_status IS NOT NULL AND previous_status <> status)"
    sql = f"""
        SELECT status, SUM(n) FROM (
            SELECT status, COUNT(*) AS n FROM {jobs} WHERE space_id = %s GROUP BY status
            UNION ALL
            SELECT status, -COUNT(*) AS n FROM {events}
             WHERE space_id = %s AND seq IS NULL AND (type = 'created' OR {moved})
             GROUP BY status
            UNION ALL
            SELECT previous_status AS status, COUNT(*) AS n FROM {events}
             WHERE space_id = %s AND seq IS NULL AND type <> 'created' AND {moved}
             GROUP BY previous_status
        ) AS moves GROUP BY status
    """  # noqa: S608 - table names come from model metadata, values are parameters
    counts = empty_counts()
    with connection.cursor() as cursor:
        cursor.execute(sql, [space_id, space_id, space_id])
        for status, n in cursor.fetchall():
            if status in counts:
                counts[status] = max(0, int(n))
    return counts


# The most rows counted per status when the space's counters are not there yet.
COUNT_CAP = 10_000


def capped_counts(space: Space) -> dict[str, int]:
    """Jobs per status, counting at most COUNT_CAP rows each through the (space, status, -id)
    index, so a page never issues an unbounded COUNT(*)."""
    result = {}
    for status in STATUSES:
        ids = Job.objects.filter(space=space, status=status).values("id")[:COUNT_CAP]
        result[status] = Job.objects.filter(id__in=ids).count()
    return result


def space_counts(space: Space) -> dict[str, int]:
    """Jobs per status for a page: the space's counters, or capped counts before the first
    event has been numbered."""
    counts = stored_counts(space.status_counts, partial=True)
    return counts if counts is not None else capped_counts(space)


# --- the queue -------------------------------------------------------------------------------

# Past this many distinct priorities in one space the oldest pending job is looked for under
# the highest ones only.
MAX_PRIORITIES_SCANNED = 50

# Oldest pending job of one space. The pending index is ordered by priority first, so a plain
# MIN(available_at) would read every pending entry of the space. Instead, walk the distinct
# priorities (a recursive skip scan, one index probe each) and take the first available_at
# under each (one more probe): cost grows with the number of priorities in use, not of jobs.
_OLDEST_PENDING_SQL_TEMPLATE = """
WITH RECURSIVE prio(p, n) AS (
    SELECT (SELECT priority FROM {table}
            WHERE space_id = %(space)s AND status = 'pending'
            ORDER BY priority DESC LIMIT 1), 1
    UNION ALL
    SELECT (SELECT priority FROM {table}
            WHERE space_id = %(space)s AND status = 'pending' AND priority < prio.p
            ORDER BY priority DESC LIMIT 1), n + 1
    FROM prio WHERE prio.p IS NOT NULL AND n < %(limit)s
)
SELECT MIN((SELECT available_at FROM {table}
             WHERE space_id = %(space)s AND status = 'pending' AND priority = prio.p
             ORDER BY available_at LIMIT 1))
FROM prio WHERE prio.p IS NOT NULL
"""


def oldest_pending(space_pk: int) -> datetime | None:
    """available_at of the space's oldest pending job, or None (see the SQL above)."""
    sql = _OLDEST_PENDING_SQL_TEMPLATE.format(table=connection.ops.quote_name(Job._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"space": space_pk, "limit": MAX_PRIORITIES_SCANNED})
        row = cursor.fetchone()
    value = row[0] if row else None
    if value is None:
        return None
    if isinstance(value, str):
        # SQLite hands back text from a scalar subquery: convert it as the ORM would.
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)  # stored in UTC (USE_TZ)
    return value


# --- events as JSON --------------------------------------------------------------------------


def latest_events(job, limit: int) -> tuple[list[JobEvent], bool]:
    """The newest LIMIT events of JOB, oldest first, and whether older ones were left out."""
    rows = list(JobEvent.objects.filter(job=job).order_by("-id")[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


def event_json(event: JobEvent) -> dict:
    """One event of a job's history, as GET /jobs/{id} lists them."""
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status,
        "previousStatus": event.previous_status,
        "data": event.data,
        "attemptNumber": attempt(event.attempt_number),
        "seq": event.seq,
        "createdAt": iso(event.created_at),
    }


def envelope(row: dict, space_public_id: str) -> dict:
    """The stream envelope (docs/streams.md) of a stored event: a values() row of
    ENVELOPE_FIELDS with job_name."""
    return {
        "type": row["type"],
        "jobId": row["job_id"],
        "jobName": row["job_name"],
        "spaceId": space_public_id,
        "status": row["status"],
        "attemptNumber": attempt(row["attempt_number"]),
        # Always an object for events that carry nothing (`created`): streams send the envelope
        # with `data` on every message.
        "data": {} if row["data"] is None else row["data"],
        "seq": row["seq"],
        "timestamp": iso(row["created_at"]),
    }


ENVELOPE_FIELDS = (
    "id",
    "job_id",
    "type",
    "status",
    "data",
    "attempt_number",
    "created_at",
    "seq",
)


def stored_envelopes(
    queryset: QuerySet[JobEvent], space_public_id: str, limit: int | None = None
) -> list[dict]:
    """Envelopes of stored, numbered events (replay and gap filling), in seq order."""
    rows = (
        queryset.filter(seq__isnull=False)
        .order_by("seq")
        .values(*ENVELOPE_FIELDS, job_name=F("job__name"))
    )
    if limit is not None:
        rows = rows[:limit]
    return [envelope(row, space_public_id) for row in rows]


def failure_events(job, limit: int) -> list[JobEvent]:
    """The newest LIMIT `retried` and `dead` events of JOB (each carries the error of the
    attempt that failed), oldest first: the job page's attempts, however many progress events
    came in between. Walks JOB's events through the (job, id) index."""
    rows = JobEvent.objects.filter(job=job, type__in=("retried", "dead")).order_by("-id")[:limit]
    return list(reversed(rows))
