"""The notification outbox: from committed job events to Celery tasks, with nothing lost.

1. jobs.events sends `event_committed` after a transition commits. on_event_committed()
   (running in the request, after commit) decides what each event means for the space's
   channels and writes one PendingNotification per (event, channel) in a single INSERT, then
   hands the new rows to Celery with one publish.
2. If the publish fails (broker down), the rows stay with an empty lease and the request
   carries on; this process then skips publishing for a short while (a circuit breaker), so
   an outage costs at most one broker timeout per process, not one per request.
3. flush_outbox(), run by the scheduler every few seconds, re-enqueues rows that were never
   handed over or whose task message was lost (lease ran out).

Pushes are best effort: one whose event is older than NOTIFICATIONS_PUSH_MAX_AGE (60 s) is not
sent. When the flush finds such stale pushes (they piled up during a broker outage), it drops
them and wakes the space once instead: one push for the job at the head of its queue (or per
job name in the push filter), which is all a worker needs to start polling again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from celery import current_app, signature
from django.db.models import Q
from django.utils import timezone

from jobs.events import ENQUEUE_TYPES, TRANSITION_TYPES
from jobs.models import Job, JobEvent
from spaces.models import Space

from . import conf
from .models import NotificationDelivery, PendingNotification, SpaceChannels
from .transports.callback import CALLBACK_STATUSES
from .transports.slack import slack_events_for
from .transports.webhook import PUSH_EVENT, name_allowed

log = logging.getLogger("notifications")

Channel = NotificationDelivery.Channel

# Event types that can mean something to a channel: every transition but a hand-out
# (delivered), which no channel reports. The rest (progress, logs, custom events ...) are
# skipped before any query is made.
RELEVANT_TYPES = TRANSITION_TYPES - {"delivered"}
# A job that became pending writes one of these with status "pending": the push trigger.
PUSH_TRIGGER_TYPES = ENQUEUE_TYPES
# What the planner reads of a space and of its channels (one query, a LEFT JOIN).
_SPACE_FIELDS = (
    "id",
    "public_id",
    "paused_at",
    "channels__slack_webhook_url",
    "channels__slack_events",
    "channels__slack_disabled_at",
    "channels__push_url",
    "channels__push_names",
)
DISPATCH_CHUNK = 500
MAX_WAKE_NAMES = 100
# The Celery tasks that send the rows (notifications/tasks.py), sent by name: tasks.py runs
# flush_outbox(), so importing it here would close a cycle. NotificationsConfig.ready imports
# tasks.py, so the names resolve to the registered tasks (eager mode, tests' mocks included).
DELIVER_TASK = "notifications.tasks.deliver"
DISPATCH_TASK = "notifications.tasks.dispatch"

# Circuit breaker: monotonic time until which this process does not try to publish, and
# whether the last publish failed (the next one is then a fail-fast probe, see _publish).
_publish_paused_until = 0.0
_probing = False


def plan(events: Iterable[JobEvent]) -> list[PendingNotification]:
    """Unsaved outbox rows for EVENTS, according to each space's current settings."""
    relevant = [e for e in events if e.type in RELEVANT_TYPES]
    if not relevant:
        return []
    spaces = _spaces(relevant)
    rows: list[PendingNotification] = []
    for event in relevant:
        space = spaces.get(event.space_id)
        if space is None:
            continue
        job = event.job
        channels = SpaceChannels.find(space)  # loaded with the space; None: none configured

        if (
            channels is not None
            and channels.slack_webhook_url
            and channels.slack_disabled_at is None
        ):
            chosen = [k for k in slack_events_for(event) if k in (channels.slack_events or [])]
            if chosen:
                rows.append(_row(space, job, event, Channel.SLACK, chosen))

        if (
            channels is not None
            and channels.push_url
            and space.paused_at is None  # held while paused; resume wakes the workers
            and event.status == Job.Status.PENDING
            and event.type in PUSH_TRIGGER_TYPES
            and name_allowed(channels, job.name)
        ):
            rows.append(_row(space, job, event, Channel.PUSH, [PUSH_EVENT]))

        if event.type in CALLBACK_STATUSES and job.callback_url:
            rows.append(_row(space, job, event, Channel.CALLBACK, [event.type]))
    return rows


def _spaces(events: list[JobEvent]) -> dict[int, Space]:
    """The spaces of EVENTS with their channels loaded (space.channels).

    Hot path: every committed transition comes through here. A space an authentication loaded
    in the last API_KEY_CACHE_SECONDS (spaces.auth, which loads the channels with it, see
    NotificationsConfig.ready) is used as it is, so the usual request costs no query here, and
    a settings change reaches the planner within that time. The other spaces take one query.
    """
    from spaces.auth import recent_space

    found: dict[int, Space] = {}
    missing: set[int] = set()
    for space_id in {e.space_id for e in events}:
        space = recent_space(space_id)
        if space is None:
            missing.add(space_id)
        else:
            found[space_id] = space
    if missing:
        found.update(Space.objects.select_related("channels").only(*_SPACE_FIELDS).in_bulk(missing))
    return found


def _row(
    space: Space, job: Job, event: JobEvent | None, channel: str, events: list[str]
) -> PendingNotification:
    return PendingNotification(
        space_id=space.pk, job=job, job_event=event, channel=channel, events=events
    )


def on_event_committed(sender, events: list[JobEvent], **kwargs) -> None:
    """Receiver of jobs.events.event_committed (connected in NotificationsConfig.ready)."""
    save_and_enqueue(plan(events))


def save_and_enqueue(rows: list[PendingNotification], now: datetime | None = None) -> list[int]:
    """Write ROWS to the outbox and hand them to Celery; returns their ids."""
    if not rows:
        return []
    now = now or timezone.now()
    token = uuid.uuid4().hex
    publish = _broker_believed_up()
    for row in rows:
        row.token = token
        row.created_at = now
        # Leased from the start when a publish follows; empty when the flush must do it.
        row.lease_until = now + timedelta(seconds=conf.enqueue_lease()) if publish else None
    created = PendingNotification.objects.bulk_create(rows, batch_size=DISPATCH_CHUNK)
    ids = [row.pk for row in created]
    if publish and not _publish(ids, token):
        PendingNotification.objects.filter(id__in=ids, token=token).update(lease_until=None)
    return ids


def _broker_believed_up() -> bool:
    return time.monotonic() >= _publish_paused_until


def _publish(ids: list[int], token: str) -> bool:
    """One Celery message for IDS (owned by TOKEN); False when the broker refused it."""
    global _publish_paused_until, _probing

    def send(connection) -> None:
        if len(ids) == 1:
            signature(DELIVER_TASK).apply_async((ids[0], token), connection=connection)
        else:
            for start in range(0, len(ids), DISPATCH_CHUNK):
                chunk = ids[start : start + DISPATCH_CHUNK]
                signature(DISPATCH_TASK).apply_async((chunk, token), connection=connection)

    try:
        if _probing:
            # After a failure, find out on a fresh connection that does not retry: a broker
            # still down then costs one refused connect (or CELERY_BROKER_CONNECTION_TIMEOUT
            # when packets vanish), not kombu's retry interval on top.
            app = current_app
            options = {**(app.conf.broker_transport_options or {}), "max_retries": 0}
            with app.connection_for_write(transport_options=options) as connection:
                send(connection)
        else:
            send(None)
    except Exception as exc:
        # Redis (or the filesystem broker) is away. CELERY_BROKER_CONNECTION_TIMEOUT bounds
        # this call; the breaker keeps the next requests from waiting on it too.
        _publish_paused_until = time.monotonic() + conf.broker_backoff()
        _probing = True
        log.warning(
            "notification broker unavailable, outbox flush will send them",
            extra={"count": len(ids), "error": type(exc).__name__},
        )
        return False
    _probing = False
    return True


def reset_breaker() -> None:
    global _publish_paused_until, _probing
    _publish_paused_until = 0.0
    _probing = False


def flush_outbox(now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Re-enqueue outbox rows that are not with Celery; drop stale pushes and wake instead.

    Safe to run in several processes at once: rows are taken over with a conditional UPDATE
    that gives them a new token, and a task only works on a row whose token it carries.
    """
    now = now or timezone.now()
    due_filter = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    due = list(
        PendingNotification.objects.filter(due_filter)
        .order_by("id")
        .values_list("id", "channel", "created_at", "space_id")[:limit]
    )
    result = {"enqueued": 0, "dropped_pushes": 0, "wakes": 0}
    if not due:
        return result

    stale_before = now - timedelta(seconds=conf.push_max_age())
    stale_by_space: dict[int, list[int]] = defaultdict(list)
    fresh: list[int] = []
    for pk, channel, created_at, space_id in due:
        if channel == Channel.PUSH and created_at < stale_before:
            stale_by_space[space_id].append(pk)
        else:
            fresh.append(pk)

    for space_id, pks in stale_by_space.items():
        # The lease condition again: a concurrent flush that took these rows keeps them.
        dropped, _ = PendingNotification.objects.filter(due_filter, id__in=pks).delete()
        if not dropped:
            continue
        result["dropped_pushes"] += dropped
        space = Space.objects.filter(pk=space_id).first()
        if space is not None:
            result["wakes"] += len(wake_space(space, now=now))

    if fresh:
        if not _broker_believed_up():
            return result
        token = uuid.uuid4().hex
        PendingNotification.objects.filter(due_filter, id__in=fresh).update(
            token=token, lease_until=now + timedelta(seconds=conf.enqueue_lease())
        )
        taken = list(
            PendingNotification.objects.filter(id__in=fresh, token=token).values_list(
                "id", flat=True
            )
        )
        if taken:
            if _publish(taken, token):
                result["enqueued"] = len(taken)
            else:
                PendingNotification.objects.filter(id__in=taken, token=token).update(
                    lease_until=None
                )
    if any(result.values()):
        log.info("notification outbox flushed", extra=result)
    return result


def wake_space(space: Space, now: datetime | None = None) -> list[int]:
    """Push `job.pending` for what is waiting in SPACE: the head of its queue, or, with a
    job-name filter, the oldest pending job of each listed name. Used on resume and in place
    of stale pushes. Returns the outbox row ids."""
    # Nothing while the space is paused: resuming calls this again.
    channels = (
        SpaceChannels.objects.filter(pk=space.pk, space__paused_at__isnull=True)
        .only("push_url", "push_names")
        .first()
    )
    if channels is None or not channels.push_url:
        return []
    pending = Job.objects.filter(space=space, status=Job.Status.PENDING).order_by(
        "-priority", "available_at", "id"
    )
    heads: list[Job] = []
    if channels.push_names:
        # One LIMIT 1 per name, each served by the partial index job_pending_name_idx.
        for name in list(channels.push_names)[:MAX_WAKE_NAMES]:
            head = pending.filter(name=name).first()
            if head is not None:
                heads.append(head)
    else:
        head = pending.first()
        if head is not None:
            heads.append(head)
    return save_and_enqueue(
        [_row(space, job, None, Channel.PUSH, [PUSH_EVENT]) for job in heads], now
    )


def wake_on_resume(space: Space) -> None:
    """spaces.services.resume_hooks entry: pushes were held while paused, so wake now."""
    wake_space(space)
