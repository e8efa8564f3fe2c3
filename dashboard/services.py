"""What only the dashboard needs: the job list's filter as the page's query string carries it,
and the throughput chart.

The job list, the per-status counts and the log pages are read through jobs/queries.py, like
the API's; every query there and here is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from jobs import queries
from jobs.models import Job, JobEvent
from jobs.queries import ULID_RE
from spaces.models import Space

PAGE_SIZE = 50
# The most new jobs one live-list request asks about (`?fragment=rows&ids=`).
LIVE_IDS_MAX = 50

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

    def criteria(self) -> dict[str, Any]:
        """The filter as jobs.queries.job_page() and jobs_matching() take it."""
        return {
            "statuses": [self.status] if self.status else None,
            "name": self.name,
            "text": self.q,
        }


def live_rows(space: Space, flt: JobFilter, raw_ids: str) -> list[Job]:
    """The jobs among RAW_IDS (comma separated, at most LIVE_IDS_MAX) that match FLT, newest
    first: the live list asks with the ids of jobs just created, so a search (which the
    browser cannot judge: it covers payloads) keeps adding its matches as they come."""
    ids = [i.strip().upper() for i in raw_ids.split(",") if i.strip()][:LIVE_IDS_MAX]
    ids = [i for i in ids if ULID_RE.match(i)]
    if not ids:
        return []
    # The filter as in the list, text included, over these few rows only (by primary key).
    return list(queries.jobs_matching(space, **flt.criteria()).filter(id__in=ids).order_by("-id"))


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
