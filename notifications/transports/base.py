"""The Transport base: one attempt to send one message, recorded as a NotificationDelivery.

A new kind of notification is a subclass (see slack.py, webhook.py, callback.py): it says
where to send (`url`), what (`payload`, `headers`), when there is nothing to do (`is_noop`)
and how to read the answer (`raise_for_response`); the base does the sending through the safe
client, the timing, the delivery row and the logging.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from django.core.serializers.json import DjangoJSONEncoder

from jobs.models import Job, JobEvent
from lib.http_headers import validate_headers
from lib.outbound import url_host
from spaces.models import Space

from .. import conf, http
from ..models import NotificationDelivery, SpaceChannels

log = logging.getLogger("notifications")

SIGNATURE_HEADER = "X-Jobyard-Signature"
EVENT_HEADER = "X-Jobyard-Event"
DELIVERY_HEADER = "X-Jobyard-Attempt"
RESPONSE_BODY_CHARS = 1024  # of an answer, kept for the attempt's job event


class TransportError(Exception):
    """A failed attempt. `permanent` ones are not retried; `retry_after` comes from the
    receiver (429 Retry-After)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
        unanswered: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        # No HTTP answer at all (timeout, refused, too large): trips the endpoint's breaker.
        self.unanswered = unanswered
        self.retry_after = retry_after
        self.status_code = status_code
        self.delivery: NotificationDelivery | None = None


@dataclass
class Message:
    """What to send: EVENT is a Slack event, "job.pending", a callback status or "test"."""

    event: str
    job: Job | None = None
    job_event: JobEvent | None = None
    attempt: int = 1

    @property
    def is_test(self) -> bool:
        return self.event == "test"


def sign(body: bytes, secret: str) -> str:
    """The signature header value: `sha256=` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (only the delta-seconds form; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def describe_status(response: http.Response) -> str:
    """`HTTP 404: <start of the body>`, printable characters only."""
    snippet = "".join(c if c.isprintable() else " " for c in response.text(200)).strip()
    return f"HTTP {response.status}" + (f": {snippet}" if snippet else "")


class Transport:
    channel: ClassVar[str]

    def __init__(self, space: Space) -> None:
        self.space = space

    @cached_property
    def channels(self) -> SpaceChannels:
        """The space's channel settings and signing secret (space.channels when loaded with
        it; a space without them gets its row now, with nothing configured)."""
        return SpaceChannels.of(self.space)

    # -- what a subclass provides ---------------------------------------------------------
    def is_noop(self, message: Message) -> bool:
        """True when this message must not be sent (channel off, filtered out, stale)."""
        raise NotImplementedError

    def url(self, message: Message) -> str:
        raise NotImplementedError

    def payload(self, message: Message) -> dict:
        raise NotImplementedError

    def user_headers(self, message: Message) -> dict[str, str]:
        """Headers the user configured (validated again before every send)."""
        return {}

    def system_headers(self, message: Message, body: bytes) -> dict[str, str]:
        """Headers Jobyard adds (signature, event name); they win over user headers."""
        return {}

    def raise_for_response(self, response: http.Response) -> None:
        """Generic HTTP rules: 2xx is success; 408, 425, 429 and 5xx are transient; anything
        else (3xx, since redirects are never followed, and other 4xx) is permanent."""
        if response.ok:
            return
        status = response.status
        transient = status >= 500 or status in (408, 425, 429)
        raise TransportError(
            describe_status(response),
            permanent=not transient,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            status_code=status,
        )

    def after_attempt(
        self, message: Message, delivery: NotificationDelivery, error: TransportError | None
    ) -> None:
        """Hook run after each attempt's row is written (job events, channel state)."""

    def on_given_up(self, message: Message, error: TransportError) -> None:
        """Hook run once when a message is abandoned (permanent error or no attempts left)."""

    # -- the attempt ------------------------------------------------------------------------
    def body(self, message: Message) -> bytes:
        return json.dumps(
            self.payload(message), cls=DjangoJSONEncoder, separators=(",", ":")
        ).encode()

    def notify(self, message: Message) -> NotificationDelivery:
        """Send MESSAGE once and record the attempt; raises TransportError when it failed."""
        policy = conf.policy(self.channel)
        url = self.url(message)
        body = self.body(message)
        response: http.Response | None = None
        error: TransportError | None = None
        started = time.monotonic()
        try:
            headers = self.user_headers(message)
            problems = validate_headers(headers)
            if problems:
                # Input validation should have caught these; never send them.
                raise TransportError(f"invalid headers: {problems[0]}", permanent=True)
            headers = {**headers, **self.system_headers(message, body)}
            response = http.post(
                url,
                body,
                headers=headers,
                connect_timeout=policy.connect_timeout,
                read_timeout=policy.read_timeout,
                total_timeout=policy.total_timeout,
            )
            self.raise_for_response(response)
        except http.OutboundError as exc:
            error = TransportError(
                exc.message, permanent=exc.permanent, unanswered=not exc.permanent
            )
        except TransportError as exc:
            error = exc
        duration_ms = int((time.monotonic() - started) * 1000)
        delivery = NotificationDelivery.objects.create(
            space=self.space,
            job=message.job,
            channel=self.channel,
            event=message.event,
            target_host=url_host(url),
            attempt=message.attempt,
            success=error is None,
            status_code=response.status if response is not None else None,
            error=error.message[:2000] if error else "",
            duration_ms=duration_ms,
        )
        # Not stored on the row; the callback's job event shows it (responseBody).
        delivery.response_body = (
            response.text(RESPONSE_BODY_CHARS) if response is not None and response.body else None
        )
        # Only the host is logged: paths and headers can carry secrets.
        log.info(
            "notification %s",
            "sent" if error is None else "failed",
            extra={
                "channel": self.channel,
                "event": message.event,
                "space": self.space.public_id,
                "job": message.job.pk if message.job else None,
                "host": delivery.target_host,
                "attempt": message.attempt,
                "status": delivery.status_code,
                "duration_ms": duration_ms,
                "error": delivery.error[:200],
            },
        )
        self.after_attempt(message, delivery, error)
        if error is not None:
            error.delivery = delivery
            raise error
        return delivery
