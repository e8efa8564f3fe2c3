"""A circuit breaker per notification endpoint (space, channel, host:port).

Without it, an endpoint that hangs costs a Celery worker its full deadline (15 s for Slack)
on every attempt of every message, and a few such endpoints fill all the workers while other
spaces' notifications queue behind them. With it:

- an attempt that got no answer at all (timeout, refused or reset connection, DNS failure,
  a body past the cap) trips the breaker: the endpoint is left alone for a cool-down that
  doubles with each failure in a row (5 s, 10 s, ... up to 5 minutes);
- while it is open, deliver() puts its rows back in the outbox, due when the cool-down ends,
  without an HTTP request and without using an attempt; the outbox flush hands them out again;
- when the cool-down ends, one delivery probes the endpoint (a conditional UPDATE picks it);
  the others wait for its outcome. A success closes the breaker, a failure opens it again.

Answers with an HTTP status (5xx, 429) do not trip it: they come back fast, and their retries
already follow the channel's backoff and Retry-After. prune() (run by the scheduler every hour)
forgets endpoints nobody has tried for a week, such as an old Slack URL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import F
from django.utils import timezone

from . import conf
from .models import EndpointBreaker

COOL_DOWN_BASE = 5.0
COOL_DOWN_MAX = 300.0


def endpoint_of(url: str) -> str:
    """host[:port] of URL: what the breaker is keyed on (never the path or the query)."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    return (f"{host}:{port}" if port else host)[:300]


def cool_down(failures: int) -> float:
    return min(COOL_DOWN_MAX, COOL_DOWN_BASE * 2 ** max(0, failures - 1))


def admit(
    space_id: int, channel: str, endpoint: str, now: datetime | None = None
) -> tuple[datetime | None, bool]:
    """(None when a delivery to ENDPOINT may go ahead now, else the moment to try again;
    whether the endpoint has a breaker at all, so a success only closes one that exists)."""
    now = now or timezone.now()
    rows = EndpointBreaker.objects.filter(space_id=space_id, channel=channel, endpoint=endpoint)
    found = rows.values_list("open_until", flat=True)[:1]
    if not found:
        return None, False
    state = found[0]
    if state is None:
        return None, True
    if state > now:
        return state, True
    # The cool-down is over: one delivery probes, the others wait for its outcome (at most
    # the channel's whole deadline, plus a margin).
    probe_until = now + timedelta(seconds=conf.policy(channel).total_timeout + 5)
    if rows.filter(open_until__lte=now).update(open_until=probe_until):
        return None, True
    return probe_until, True


def succeeded(space_id: int, channel: str, endpoint: str) -> None:
    """The endpoint answered: close its breaker."""
    EndpointBreaker.objects.filter(space_id=space_id, channel=channel, endpoint=endpoint).delete()


def trip(
    space_id: int, channel: str, endpoint: str, error: str, now: datetime | None = None
) -> datetime:
    """The endpoint did not answer: open its breaker for the next cool-down; returns its end."""
    now = now or timezone.now()
    row, created = EndpointBreaker.objects.get_or_create(
        space_id=space_id,
        channel=channel,
        endpoint=endpoint,
        defaults={"failures": 1, "last_error": error[:500]},
    )
    if not created:
        EndpointBreaker.objects.filter(pk=row.pk).update(
            failures=F("failures") + 1, last_error=error[:500]
        )
        row.refresh_from_db(fields=["failures"])
    open_until = now + timedelta(seconds=cool_down(row.failures))
    EndpointBreaker.objects.filter(pk=row.pk).update(open_until=open_until)
    return open_until


FORGET_AFTER = timedelta(days=7)


def prune(now: datetime | None = None) -> int:
    """Delete breakers untouched for FORGET_AFTER whose cool-down is over; returns how many."""
    now = now or timezone.now()
    deleted, _ = EndpointBreaker.objects.filter(
        updated_at__lt=now - FORGET_AFTER, open_until__lt=now
    ).delete()
    return deleted
