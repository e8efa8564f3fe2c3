"""The operations app: the one place that wires the apps together, in every process.

It is an app (listed last in INSTALLED_APPS) for its ready() hook, which the web processes, the
Celery worker and the scheduler all run at startup (the URLconf is loaded only by processes
that serve requests, and only lazily). Apps below offer hooks and know nothing of who uses
them; here they are connected, in a stated order:

- receivers of committed job events (jobs/events.py `event_committed`);
- hooks of jobs and spaces that notifications fill (retention, resume, the key's related rows);
- the maintenance steps the scheduler process runs (jobs/maintenance.py).

docs/architecture.md draws the layers and the path of one job through these.
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
        connect_receivers()
        connect_hooks()
        register_maintenance()
        checks.register(check_operations_settings)


def connect_receivers() -> None:
    """Every committed job event, in this order (each isolated from the others, after commit):
    numbered and fanned out to the streams, planned into the notification outbox, counted and
    logged. dispatch_uid keeps a second ready() from doubling one."""
    from jobs import streams
    from jobs.events import event_committed
    from notifications import outbox

    from . import metrics

    event_committed.connect(streams.on_events_committed, dispatch_uid="jobs.streams")
    event_committed.connect(outbox.on_event_committed, dispatch_uid="notifications.outbox")
    event_committed.connect(metrics.on_events_committed, dispatch_uid="operations.metrics")


def connect_hooks() -> None:
    from jobs import events as job_events
    from jobs import groups as job_groups
    from jobs import retention as job_retention
    from notifications import outbox
    from notifications import retention as notification_retention
    from spaces import auth
    from spaces.services import resume_hooks

    # A space resumed: wake its workers for the jobs that waited.
    if outbox.wake_on_resume not in resume_hooks:
        resume_hooks.append(outbox.wake_on_resume)
    # The outbox planner reads the channels of a space an API key just loaded: with the key.
    if "channels" not in auth.space_related:
        auth.space_related.append("channels")
    # A group's member finishing (or retried) counts on its group, in the member's own
    # transaction; the last one creates the completion job (docs/workflows.md, Groups).
    if job_groups.members_moved not in job_events.terminal_moves:
        job_events.terminal_moves.append(job_groups.members_moved)
    # Job retention: deliveries lose the link to a deleted job (in its transaction), then go
    # after their own period.
    job_retention.jobs_pruned.connect(
        notification_retention.detach_deliveries, dispatch_uid="notifications.detach_deliveries"
    )
    job_retention.register_pruner("deliveries", notification_retention.prune_deliveries)


def register_maintenance() -> None:
    """The steps of the scheduler process (python manage.py run_scheduler), seconds apart."""
    from jobs import groups, maintenance, retention, rollups, services, streams, workflows
    from notifications import breaker, outbox
    from schedules import services as schedules

    maintenance.register("jobs.stage", services.stage_due, every=0.5)
    maintenance.register("jobs.rescue", services.rescue_expired, every=0.5)
    # Events whose numbering never ran (the process died right after the commit).
    maintenance.register("jobs.sequence_stragglers", streams.sequence_stragglers, every=5.0)
    maintenance.register("jobs.retention", retention.prune_expired, every=60)
    # The operator's figures (overview per name, workers): new events folded into rollups.
    maintenance.register("jobs.roll_up", rollups.roll_up, every=2.0)
    maintenance.register("jobs.prune_rollups", rollups.prune, every=600)
    # Children left blocked although their parents are all done (a crash, a restore).
    maintenance.register("jobs.repair_blocked", workflows.repair_blocked, every=60)
    # Groups whose members all finished but whose completion job was never made.
    maintenance.register("jobs.repair_groups", groups.repair_groups, every=60)
    maintenance.register("schedules.tick", schedules.tick, every=1.0)
    # Rows the broker never took (it was down) or whose message was lost.
    maintenance.register("notifications.flush_outbox", outbox.flush_outbox, every=5.0)
    maintenance.register("notifications.prune_breakers", breaker.prune, every=3600.0)


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
