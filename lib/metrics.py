"""Process metrics: the Prometheus counters, gauges and histograms every layer may update.

They count what happened in this process (docs/operations.md). With PROMETHEUS_MULTIPROC_DIR
set (prometheus-client's multi-process mode) the processes of one host share them through files
in that directory. Here are only the objects: no views, no SQL, no imports of the apps. The
/metrics endpoint, its access rules and the database series read at scrape time are in
config/metrics.py.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_DURATION = Histogram(
    "jobyard_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "jobyard_http_requests_in_progress",
    "HTTP requests being answered right now.",
    multiprocess_mode="livesum",
)
CLAIM_DURATION = Histogram(
    "jobyard_claim_duration_seconds",
    "Time to answer a poll or claim request (a long poll includes its wait).",
    ["endpoint", "status"],
    buckets=_LATENCY_BUCKETS,
)
JOB_EVENTS = Counter(
    "jobyard_job_events",
    "Job events committed by this process, by event type (custom worker types count as custom).",
    ["type"],
)
JOB_TRANSITIONS = Counter(
    "jobyard_job_transitions",
    "Job status changes committed by this process, by previous and new status.",
    ["from_status", "to_status"],
)
RETENTION_DELETED = Counter(
    "jobyard_retention_deleted_jobs",
    "Finished jobs deleted by retention in this process, by status.",
    ["status"],
)
# Open WebSocket streams in this process. Stream consumers increment it on connect and
# decrement it on disconnect: STREAM_CONNECTIONS.labels(kind="job" | "space").inc() / .dec().
# "livesum" adds up the live processes in multi-process mode and forgets dead ones.
STREAM_CONNECTIONS = Gauge(
    "jobyard_stream_connections",
    "Open WebSocket streams, by kind (job or space).",
    ["kind"],
    multiprocess_mode="livesum",
)
