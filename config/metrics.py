"""Prometheus metrics: `GET /metrics`.

Two kinds of series, documented in docs/operations.md:

- Process metrics (counters, histograms, the stream-connection gauge) count what happened in
  the process that is scraped. Scrape every web process; with PROMETHEUS_MULTIPROC_DIR set
  (prometheus-client's multi-process mode) the processes of one host share them through files
  in that directory and any one of them answers for all.
- Database metrics (jobs per space and status, queue age, deliveries) describe the whole
  cluster, read at scrape time from cheap queries: per-status counts come from
  Space.status_counts (kept up to date by the event sequencer), never from COUNT(*) over jobs;
  the queue age is a few index probes per space; deliveries are aggregated over a short recent
  window through their (space, created_at) index. The result is cached for
  METRICS_CACHE_SECONDS, so several scrapers cost the database no more than one.

Access is controlled by METRICS_TOKEN (Authorization: Bearer) and METRICS_ALLOWED_NETWORKS
(CIDR list, matched against REMOTE_ADDR); every rule that is set must pass. With neither set the
endpoint answers 404: metrics are off until an operator turns them on.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from jobs import queries
from jobs.events import LIFECYCLE_TYPES
from lib.metrics import (
    CLAIM_DURATION,
    HTTP_IN_PROGRESS,  # noqa: F401 - config/middleware.py counts requests in flight with it
    JOB_EVENTS,
    JOB_TRANSITIONS,
    REQUEST_DURATION,
)

log = logging.getLogger(__name__)
transition_log = logging.getLogger("jobyard.transitions")

# --- process metrics ---------------------------------------------------------------------------
# The metric objects are in lib/metrics.py, where every layer can update them.

# URL names whose timing feeds CLAIM_DURATION (jobs/api/urls.py).
CLAIM_ROUTES = {"jobs-api-poll": "poll", "jobs-api-claim": "claim"}

# Event types written by the service itself (the lifecycle vocabulary, jobs/events.py);
# anything else is a worker's custom /event type, counted as "custom" so a client cannot grow
# the label set without bound.
KNOWN_EVENT_TYPES = LIFECYCLE_TYPES


def observe_request(
    method: str, route: str, status: int, seconds: float, url_name: str | None
) -> None:
    """Called by RequestLogMiddleware once per request."""
    REQUEST_DURATION.labels(method, route, str(status)).observe(seconds)
    endpoint = CLAIM_ROUTES.get(url_name or "")
    if endpoint is not None and method == "POST":
        CLAIM_DURATION.labels(endpoint, str(status)).observe(seconds)


def on_events_committed(sender: Any = None, events: Iterable[Any] = (), **kwargs: Any) -> None:
    """Receiver of jobs.events.event_committed: counts events and logs each transition.

    One log line per status change, at INFO when logs are JSON (production) and at DEBUG on
    the human-readable default, where a line per transition would drown everything else.
    """
    level = logging.INFO if settings.LOG_FORMAT == "json" else logging.DEBUG
    log_enabled = transition_log.isEnabledFor(level)
    for event in events:
        kind = event.type if event.type in KNOWN_EVENT_TYPES else "custom"
        JOB_EVENTS.labels(kind).inc()
        previous = event.previous_status
        is_transition = kind == "created" or (previous is not None and previous != event.status)
        if not is_transition:
            continue
        JOB_TRANSITIONS.labels(previous or "new", event.status).inc()
        if log_enabled:
            transition_log.log(level, "job %s", kind, extra=_transition_fields(event, kind))


def _transition_fields(event: Any, kind: str) -> dict[str, Any]:
    job = event.job
    # Only what is loaded on the instance: a deferred field would cost a query per line.
    loaded = vars(job)
    fields: dict[str, Any] = {
        "space": _space_public_id(job),
        "job_id": event.job_id,
        "job_name": loaded.get("name"),
        "transition": kind,
        "from_status": event.previous_status,
        "status": event.status,
        "attempt": event.attempt_number,
    }
    # Run time on the way out: from the ack to the end, or from the delivery when there was
    # no separate ack (a complete on a delivered job acks it at that same moment).
    finished = loaded.get("completed_at")
    started = loaded.get("started_at")
    if not started or (finished and started >= finished):
        started = loaded.get("delivered_at")
    if event.status in ("completed", "dead", "killed") and started and finished:
        fields["duration_ms"] = round((finished - started).total_seconds() * 1000)
    return fields


def _space_public_id(job: Any) -> str:
    from jobs.models import Job

    if Job.space.is_cached(job):
        return job.space.public_id
    return _public_id_of_space(job.space_id)


@functools.lru_cache(maxsize=4096)
def _public_id_of_space(space_pk: int) -> str:
    # Public ids never change, so one query per space and process is enough.
    from spaces.models import Space

    return Space.objects.filter(pk=space_pk).values_list("public_id", flat=True).first() or str(
        space_pk
    )


# --- database metrics --------------------------------------------------------------------------

# Deliveries are reported over this recent window.
DELIVERY_WINDOW_SECONDS = 300


class DatabaseCollector:
    """Cluster-wide series read from the database at scrape time, cached briefly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")

    def describe(self) -> list[Metric]:
        # Registration must not query the database (it happens at import time).
        return []

    def collect(self) -> Iterator[Metric]:
        ttl = settings.METRICS_CACHE_SECONDS
        # One scrape computes while concurrent ones wait and reuse its result.
        with self._lock:
            if time.monotonic() - self._cached_at >= ttl:
                self._cached = self._compute()
                self._cached_at = time.monotonic()
            metrics = self._cached
        yield from metrics

    def invalidate(self) -> None:
        with self._lock:
            self._cached_at = float("-inf")

    def _compute(self) -> list[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "jobyard_metrics_database_up", "1 when the database metrics could be read."
        )
        try:
            metrics = list(self._read())
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: database metrics failed", extra={"error": repr(exc)[:300]})
            metrics = []
            up.add_metric([], 0)
        took = GaugeMetricFamily(
            "jobyard_metrics_collect_seconds", "Time spent reading the database metrics."
        )
        took.add_metric([], time.perf_counter() - started)
        return [*metrics, up, took]

    def _read(self) -> Iterator[Metric]:
        from notifications.models import NotificationDelivery
        from spaces.models import Space

        limit = settings.METRICS_MAX_SPACES
        rows = list(
            Space.objects.order_by("id").values_list(
                "id",
                "public_id",
                "name",
                "organization__slug",
                "status_counts",
                "paused_at",
                "event_seq",
            )[: limit + 1]
        )
        truncated = len(rows) > limit
        rows = rows[:limit]
        now = timezone.now()

        info = GaugeMetricFamily(
            "jobyard_space_info", "Names of each space (value 1).", labels=["space", "org", "name"]
        )
        jobs = GaugeMetricFamily(
            "jobyard_jobs", "Jobs per space and status.", labels=["space", "status"]
        )
        paused = GaugeMetricFamily(
            "jobyard_space_paused", "1 while the space is paused.", labels=["space"]
        )
        age = GaugeMetricFamily(
            "jobyard_queue_oldest_pending_age_seconds",
            "Seconds the oldest pending job of the space has waited (0 when none).",
            labels=["space"],
        )
        seq = CounterMetricFamily(
            "jobyard_space_events",
            "Job events written in the space (its stream sequence number), across all processes.",
            labels=["space"],
        )
        for pk, public_id, name, org, counts, paused_at, event_seq in rows:
            # The sequencer fills the counts in on a space's first event; until then the space
            # has no job series rather than false zeros.
            known = queries.stored_counts(counts)
            info.add_metric([public_id, org, name], 1)
            if known is not None:
                for status, n in known.items():
                    jobs.add_metric([public_id, status], max(n, 0))
            paused.add_metric([public_id], 1 if paused_at else 0)
            seq.add_metric([public_id], event_seq or 0)
            # Counts known and nothing pending: no need to look at the queue.
            if known is not None and known["pending"] <= 0:
                age.add_metric([public_id], 0)
                continue
            oldest = queries.oldest_pending(pk)
            age.add_metric([public_id], max((now - oldest).total_seconds(), 0) if oldest else 0)

        deliveries = GaugeMetricFamily(
            "jobyard_notification_deliveries_recent",
            f"Notification delivery attempts in the last {DELIVERY_WINDOW_SECONDS} s, "
            "by channel and outcome.",
            labels=["channel", "outcome"],
        )
        totals = {
            (channel, outcome): 0
            for channel in NotificationDelivery.Channel.values
            for outcome in ("success", "failure")
        }
        since = now - timedelta(seconds=DELIVERY_WINDOW_SECONDS)
        space_ids = [row[0] for row in rows]
        for start in range(0, len(space_ids), 500):
            # space_id IN (...) AND created_at >= since: the (space, created_at) index, so
            # only the window's rows are read.
            grouped = (
                NotificationDelivery.objects.filter(
                    space_id__in=space_ids[start : start + 500], created_at__gte=since
                )
                .order_by()
                .values_list("channel", "success")
                .annotate(n=Count("id"))
            )
            for channel, success, n in grouped:
                key = (channel, "success" if success else "failure")
                totals[key] = totals.get(key, 0) + n
        for (channel, outcome), n in sorted(totals.items()):
            deliveries.add_metric([channel, outcome], n)

        spaces_truncated = GaugeMetricFamily(
            "jobyard_metrics_spaces_truncated",
            "1 when there are more spaces than METRICS_MAX_SPACES and some were left out.",
        )
        spaces_truncated.add_metric([], 1 if truncated else 0)
        yield from (info, jobs, paused, age, seq, deliveries, spaces_truncated)
        yield from per_name_metrics([(row[0], row[1]) for row in rows], now)


# Per space, the job names with the most volume (pending + in flight + finished in the last
# hour) get series of their own; the rest are summed under name="_other", so a producer that
# invents names cannot grow the label set: at most METRICS_NAMES_PER_SPACE + 1 names a space.
METRICS_NAMES_PER_SPACE = 10
OTHER_NAMES = "_other"


def per_name_metrics(spaces: list[tuple[int, str]], now) -> Iterator[Metric]:
    """Gauges per (space, job name) from the rollup tables (jobs/rollups.py): no job counted.

    The oldest pending age is read for the top names with pending jobs (a skip scan each) and
    not for "_other"."""
    from jobs import rollups

    pending = GaugeMetricFamily(
        "jobyard_name_pending", "Pending jobs per space and job name.", labels=["space", "name"]
    )
    running = GaugeMetricFamily(
        "jobyard_name_running",
        "Jobs delivered or running per space and job name.",
        labels=["space", "name"],
    )
    age = GaugeMetricFamily(
        "jobyard_name_oldest_pending_age_seconds",
        "Seconds the oldest pending job of the name has waited (0 when none; not for _other).",
        labels=["space", "name"],
    )
    completed = GaugeMetricFamily(
        "jobyard_name_completed_last_hour",
        "Jobs of the name completed in the last hour.",
        labels=["space", "name"],
    )
    failed = GaugeMetricFamily(
        "jobyard_name_failed_last_hour",
        "Failed attempts (retried or dead) of the name in the last hour.",
        labels=["space", "name"],
    )
    for start in range(0, len(spaces), 500):
        chunk = dict(spaces[start : start + 500])
        ids = list(chunk)
        hour = rollups.hour_figures(ids, now)
        state = rollups.states(ids)
        per_space: dict[int, dict[str, list[int]]] = {}
        for space_id, name in set(hour) | set(state):
            h, st = hour.get((space_id, name)), state.get((space_id, name))
            figures = [
                max(st.pending, 0) if st else 0,
                max(st.delivered, 0) + max(st.running, 0) if st else 0,
                h.completed if h else 0,
                h.failed if h else 0,
            ]
            if any(figures):
                per_space.setdefault(space_id, {})[name] = figures
        for space_id, names in per_space.items():
            public_id = chunk[space_id]
            ranked = sorted(names.items(), key=lambda item: (-sum(item[1]), item[0]))
            top, rest = ranked[:METRICS_NAMES_PER_SPACE], ranked[METRICS_NAMES_PER_SPACE:]
            if rest:
                top.append((OTHER_NAMES, [sum(f[i] for _, f in rest) for i in range(4)]))
            for name, (p, r, c, f) in top:
                labels = [public_id, name]
                pending.add_metric(labels, p)
                running.add_metric(labels, r)
                completed.add_metric(labels, c)
                failed.add_metric(labels, f)
                if name == OTHER_NAMES:
                    continue
                oldest = rollups.oldest_pending(space_id, name) if p else None
                age.add_metric(labels, max((now - oldest).total_seconds(), 0) if oldest else 0)
    yield from (pending, running, age, completed, failed)


DATABASE_COLLECTOR = DatabaseCollector()
_DATABASE_REGISTRY = CollectorRegistry()
_DATABASE_REGISTRY.register(DATABASE_COLLECTOR)


def render() -> bytes:
    """The exposition text: process metrics (or every local process's) plus database metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process_part = generate_latest(registry)
    else:
        process_part = generate_latest(REGISTRY)
    return process_part + generate_latest(_DATABASE_REGISTRY)


# --- the endpoint ------------------------------------------------------------------------------


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    denied = _check_access(request)
    if denied is not None:
        return denied
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def _check_access(request: HttpRequest) -> HttpResponse | None:
    token = settings.METRICS_TOKEN
    networks = parse_networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if not token and not networks:
        return _not_found()
    if networks and not _address_allowed(request.META.get("REMOTE_ADDR", ""), networks):
        # Same answer as "off": a caller outside the networks learns nothing.
        return _not_found()
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            response = JsonResponse(
                {"error": "Invalid or missing metrics token", "code": "invalid_metrics_token"},
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


def _not_found() -> HttpResponse:
    return JsonResponse({"error": "Not found", "code": "not_found"}, status=404)


@functools.lru_cache(maxsize=16)
def parse_networks(
    values: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """METRICS_ALLOWED_NETWORKS as networks; a bare address means just that host.

    Raises ValueError on a malformed entry (the `operations.E001` system check reports it at
    startup).
    """
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _address_allowed(address: str, networks: Iterable[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks if network.version == ip.version)
