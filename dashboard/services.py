"""Queries only the dashboard needs: the job list (filters, search, keyset pages), the
throughput chart and the per-status counts.

Every query here is bounded: the job list walks the (space, [status | name], -id) indexes
with a keyset cursor (never OFFSET, never COUNT(*) over the table), and text search scans at
most SEARCH_WINDOW of the newest jobs below the cursor, so its cost does not grow with the
table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast, TruncMinute
from django.utils import timezone

from jobs.models import Job, JobEvent
from spaces.models import Space

PAGE_SIZE = 50
# How many of the newest jobs (below the cursor) one search request looks through. Without
# a text index on PostgreSQL (see docs/dashboard.md) this keeps a search to a bounded index
# range scan plus a filter over at most this many rows.
SEARCH_WINDOW = 5000
# Crockford base32, the alphabet of ULIDs.
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$", re.IGNORECASE)

CHART_SERIES = ("created", "completed", "dead")
CHART_MINUTES = 60


@dataclass
class JobFilter:
    status: str = ""
    name: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, params) -> JobFilter:
        status = params.get("status", "").strip()
        if status not in Job.Status.values:
            status = ""
        return cls(
            status=status,
            name=params.get("name", "").strip()[:200],
            q=params.get("q", "").strip()[:200],
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.name or self.q)

    def as_params(self) -> dict[str, str]:
        return {k: v for k, v in (("status", self.status), ("name", self.name), ("q", self.q)) if v}

    def apply(self, qs: QuerySet[Job]) -> QuerySet[Job]:
        """Status and name filters: both are served by the space list indexes."""
        if self.status:
            qs = qs.filter(status=self.status)
        if self.name:
            qs = qs.filter(name=self.name)
        return qs

    def text_q(self) -> Q:
        """The search predicate: an exact job id, or the text in the name, payload or error."""
        if ULID_RE.match(self.q):
            return Q(id=self.q.upper())
        return (
            Q(name__icontains=self.q)
            | Q(payload_text__icontains=self.q)
            | Q(last_error__icontains=self.q)
        )


@dataclass
class JobPage:
    jobs: list[Job]
    # Cursors for the links: `before` pages to older jobs, `after` to newer ones.
    older: str | None = None
    newer: str | None = None
    # For searches: how far back this page looked when it found fewer than a page of matches.
    searched_down_to: datetime | None = None
    notes: list[str] = field(default_factory=list)


def job_page(
    space: Space, flt: JobFilter, *, before: str = "", after: str = "", size: int | None = None
) -> JobPage:
    size = size or PAGE_SIZE
    base = flt.apply(Job.objects.filter(space=space))
    if flt.q:
        return _search_page(base, flt, before=before, size=size)
    if after:
        # Newer page: walk up from the cursor, then show newest first like every page.
        rows = list(base.filter(id__gt=after).order_by("id")[: size + 1])
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        return JobPage(
            jobs=rows,
            older=rows[-1].id if rows else after,
            newer=rows[0].id if rows and more_newer else None,
        )
    qs = base.filter(id__lt=before) if before else base
    rows = list(qs.order_by("-id")[: size + 1])
    has_older = len(rows) > size
    rows = rows[:size]
    return JobPage(
        jobs=rows,
        older=rows[-1].id if rows and has_older else None,
        newer=rows[0].id if rows and before else None,
    )


def _search_page(base: QuerySet[Job], flt: JobFilter, *, before: str, size: int) -> JobPage:
    if ULID_RE.match(flt.q):
        return JobPage(jobs=list(base.filter(id=flt.q.upper())))
    window_qs = base.filter(id__lt=before) if before else base
    # The newest SEARCH_WINDOW ids below the cursor, as a subquery (LIMIT inside IN works on
    # PostgreSQL and SQLite); the text filter then runs over those rows only.
    window = window_qs.order_by("-id").values("id")[:SEARCH_WINDOW]
    matches = (
        Job.objects.filter(id__in=window)
        .annotate(payload_text=Cast("payload", TextField()))
        .filter(flt.text_q())
        .order_by("-id")
    )
    rows = list(matches[: size + 1])
    if len(rows) > size:
        rows = rows[:size]
        return JobPage(jobs=rows, older=rows[-1].id, newer=None)
    # Fewer than a page matched: continue below the window if the window was full. The two
    # ids around the window's edge: the oldest scanned and the first one left out.
    edge = list(window_qs.order_by("-id").values_list("id", "created_at")[SEARCH_WINDOW - 1 :][:2])
    if len(edge) < 2:
        return JobPage(jobs=rows)
    last_id, last_created = edge[0]
    return JobPage(
        jobs=rows,
        older=last_id,
        searched_down_to=last_created,
        notes=[f"Searched the newest {SEARCH_WINDOW} jobs here."],
    )


def matching_jobs(space: Space, flt: JobFilter) -> QuerySet[Job]:
    """Every job matching the filter (for bulk actions on "everything matching")."""
    qs = flt.apply(Job.objects.filter(space=space))
    if flt.q:
        qs = qs.annotate(payload_text=Cast("payload", TextField())).filter(flt.text_q())
    return qs


def status_counts(space: Space) -> dict[str, int]:
    """Jobs per status: the counters the event sequencer keeps on the space row.

    Before any event has been sequenced those are empty; the fallback then counts, per
    status, at most COUNT_CAP rows through the (space, status, -id) index, so a page never
    issues an unbounded COUNT(*).
    """
    counts = space.status_counts or {}
    if counts:
        return {status: int(counts.get(status, 0) or 0) for status in Job.Status.values}
    return fallback_counts(space)


COUNT_CAP = 10_000


def fallback_counts(space: Space) -> dict[str, int]:
    result = {}
    for status in Job.Status.values:
        ids = Job.objects.filter(space=space, status=status).values("id")[:COUNT_CAP]
        result[status] = Job.objects.filter(id__in=ids).count()
    return result


def throughput(space: Space, now: datetime | None = None) -> dict:
    """Events per minute over the last hour, per series, oldest minute first.

    Served by the (space, type, created_at) index on JobEvent.
    """
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=CHART_MINUTES - 1)
    rows = (
        JobEvent.objects.filter(space=space, type__in=CHART_SERIES, created_at__gte=start)
        .annotate(minute=TruncMinute("created_at"))
        .values("type", "minute")
        .annotate(n=Count("id"))
    )
    minutes = [start + timedelta(minutes=i) for i in range(CHART_MINUTES)]
    index = {m: i for i, m in enumerate(minutes)}
    series = {name: [0] * CHART_MINUTES for name in CHART_SERIES}
    for row in rows:
        minute = row["minute"]
        if minute is None:
            continue
        if timezone.is_naive(minute):
            minute = timezone.make_aware(minute, UTC)
        i = index.get(minute)
        if i is not None:
            series[row["type"]][i] += row["n"]
    return {
        "start": start.isoformat(),
        "minutes": [m.isoformat() for m in minutes],
        "series": series,
    }


CHART_CACHE_SECONDS = 10


def cached_throughput(space: Space) -> dict:
    """throughput() shared by every viewer of the space for a few seconds.

    A busy space writes millions of events an hour, and counting them is the most expensive
    query of the dashboard; open pages bump the current minute from live events in between.
    """
    key = f"dashboard:throughput:{space.pk}"
    data = cache.get(key)
    if data is None:
        data = throughput(space)
        cache.set(key, data, CHART_CACHE_SECONDS)
    return data
