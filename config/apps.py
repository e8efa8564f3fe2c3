"""The operations app: wiring for metrics and transition logs in every process.

It is an app (listed in INSTALLED_APPS) only for its ready() hook: the event receiver that
counts transitions and writes one log line per transition must be connected in the web
processes, the Celery worker and the scheduler alike, and ready() is the one place all of them
run at startup (the URLconf is loaded only by processes that serve requests, and only lazily).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class OperationsConfig(AppConfig):
    name = "config"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from jobs.events import event_committed

        from . import metrics

        event_committed.connect(
            metrics.on_events_committed, dispatch_uid="operations.metrics.on_events_committed"
        )
        checks.register(check_operations_settings)

        # Retention runs in the scheduler process (python manage.py run_scheduler).
        from jobs import retention, scheduler

        scheduler.register_periodic("jobs.retention", retention.prune_expired, every=60)


def check_operations_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .metrics import parse_networks

    errors: list[checks.CheckMessage] = []
    try:
        parse_networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    except ValueError as exc:
        errors.append(
            checks.Error(
                f"METRICS_ALLOWED_NETWORKS holds an invalid network: {exc}",
                hint="Use comma-separated CIDR blocks or addresses, e.g. 10.0.0.0/8,127.0.0.1",
                id="operations.E001",
            )
        )
    if settings.STREAM_SEQUENCER not in ("thread", "inline"):
        errors.append(
            checks.Error(
                f"STREAM_SEQUENCER must be 'thread' or 'inline', not {settings.STREAM_SEQUENCER!r}",
                id="operations.E003",
            )
        )
    if settings.RETENTION_BATCH_SIZE < 1:
        errors.append(checks.Error("RETENTION_BATCH_SIZE must be at least 1", id="operations.E002"))
    return errors
