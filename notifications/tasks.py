"""Celery tasks that send what the outbox holds. They run in the worker, never in a request.

deliver() works through one PendingNotification: each of its messages is one Transport attempt
(one NotificationDelivery row). A transient failure schedules a retry of the same row with
bounded exponential backoff (honouring Retry-After); a permanent failure or the last attempt
gives the message up. The row is deleted when nothing is left to send. An endpoint that stopped
answering is left alone for a while (breaker.py): its rows wait in the outbox meanwhile.

The outbox (outbox.py) sends deliver and dispatch by name, so only this module imports the
other (for the flush task).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError
from django.utils import timezone

from jobs.models import Job

from . import breaker, conf, outbox
from .models import NotificationDelivery, PendingNotification
from .transports import Message, TransportError, transport_for

log = logging.getLogger("notifications")


def backoff_seconds(channel: str, attempt: int, retry_after: float | None = None) -> float:
    """Delay before the attempt after ATTEMPT: base * 2**(attempt-1), capped, with +-10% jitter;
    a receiver's Retry-After wins when longer (itself capped)."""
    policy = conf.policy(channel)
    delay = min(policy.backoff_max, policy.backoff_base * 2 ** max(0, attempt - 1))
    delay *= random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, conf.max_retry_after()))
    return round(delay, 3)


@shared_task(bind=True, max_retries=5, ignore_result=True, acks_late=True)
def deliver(self, pending_id: int, token: str) -> str:
    now = timezone.now()
    # Only the message that owns the row (same token) may work on it; a message superseded
    # by a flush, or for a row already done, stops here.
    claimed = PendingNotification.objects.filter(pk=pending_id, token=token).update(
        lease_until=now + timedelta(seconds=conf.run_lease())
    )
    if not claimed:
        return "superseded"
    row = PendingNotification.objects.select_related(
        "space__organization", "space__channels", "job", "job_event"
    ).get(pk=pending_id)
    transport = transport_for(row.channel, row.space)

    if row.channel == NotificationDelivery.Channel.PUSH:
        reason = _push_skip_reason(row, now)
        if reason:
            log.info("push skipped", extra={"reason": reason, "space": row.space.public_id})
            row.delete()
            return f"skipped: {reason}"

    while row.events:
        message = Message(
            event=row.events[0], job=row.job, job_event=row.job_event, attempt=row.attempt
        )
        if not transport.is_noop(message):
            endpoint = breaker.endpoint_of(transport.url(message))
            due, tracked = breaker.admit(row.space_id, row.channel, endpoint)
            if due is not None:
                # The endpoint is cooling down: back to the outbox, due when the cool-down
                # ends (the flush hands it out again), without a request or an attempt.
                row.token = ""
                row.lease_until = due + timedelta(seconds=random.uniform(0, 2))
                row.save(update_fields=["events", "attempt", "token", "lease_until"])
                return "postponed"
            error: TransportError | None = None
            try:
                transport.notify(message)
            except TransportError as exc:
                error = exc
            except Exception as exc:
                # A bug or a database hiccup: counted as a transient attempt, so a row that
                # keeps failing is given up after max_attempts instead of looping forever.
                log.exception("notification attempt crashed", extra={"channel": row.channel})
                error = TransportError(f"internal error ({type(exc).__name__})")
            if error is None:
                if tracked:
                    breaker.succeeded(row.space_id, row.channel, endpoint)
            elif error.unanswered:
                breaker.trip(row.space_id, row.channel, endpoint, error.message)
            if error is not None:
                policy = conf.policy(row.channel)
                if not error.permanent and row.attempt < policy.max_attempts:
                    countdown = backoff_seconds(row.channel, row.attempt, error.retry_after)
                    row.attempt += 1
                    # The lease covers the wait: flush_outbox leaves the row alone meanwhile,
                    # and takes it over if the retry message is lost.
                    row.lease_until = timezone.now() + timedelta(
                        seconds=countdown + conf.enqueue_lease()
                    )
                    row.save(update_fields=["events", "attempt", "lease_until"])
                    try:
                        raise self.retry(countdown=countdown)
                    except MaxRetriesExceededError:
                        pass
                transport.on_given_up(message, error)
        row.events.pop(0)
        row.attempt = 1
        if row.events:
            row.save(update_fields=["events", "attempt"])
    row.delete()
    return "done"


def _push_skip_reason(row: PendingNotification, now) -> str | None:
    if row.created_at < now - timedelta(seconds=conf.push_max_age()):
        return "stale"
    if row.job is None:
        return "job gone"
    # A wake for a job someone already took would only make a worker's claim fail.
    status = Job.objects.filter(pk=row.job_id).values_list("status", flat=True).first()
    if status != Job.Status.PENDING:
        return "no longer pending"
    return None


@shared_task(ignore_result=True)
def dispatch(pending_ids: list[int], token: str) -> None:
    """Fan a batch of outbox rows out to one deliver task each."""
    for index, pending_id in enumerate(pending_ids):
        try:
            deliver.delay(pending_id, token)
        except Exception:
            # The broker went away mid-batch: let the flush take the rest at once.
            rest = pending_ids[index:]
            PendingNotification.objects.filter(id__in=rest, token=token).update(lease_until=None)
            raise


@shared_task(ignore_result=True)
def flush() -> dict[str, int]:
    """flush_outbox() as a task, for deployments that drive it from Celery beat."""
    return outbox.flush_outbox()
