"""Transport retries: urllib3's ``Retry`` on the client's ``requests`` session.

Two policies, one per kind of call (docs/client.md, "Retries"):

- ``READ``: reads and calls the HTTP method says may be repeated (GET, PUT, DELETE...), and
  every method when the connection could not be made at all (nothing reached the server).
- ``REPLAY``: the same plus POST, for the POSTs whose repeat the server answers as the first
  time: ``create`` with its idempotency key (a repeat returns the job made the first time) and
  ``keepalive`` (a repeat extends the deadline again).

Other POSTs (poll, claim, ack, complete, fail, kill, retry, progress, logs...) are not repeated
after they may have reached the server: a repeated poll or claim hands out jobs nobody receives,
and a repeated complete or fail gets a 409 where the first succeeded. The worker runner retries
its own calls knowing what a 409 then means.

Transient answers retried: 429 (after its ``Retry-After``, capped), 502, 503 and 504; and a
connection reset or refused. Waits grow exponentially with jitter (``backoff_jitter``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from urllib3.util.retry import Retry

__all__ = ["RETRY_STATUSES", "ClientRetry", "make_retry"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
READ_METHODS = Retry.DEFAULT_ALLOWED_METHODS  # GET, HEAD, PUT, DELETE, OPTIONS, TRACE
REPLAY_METHODS = READ_METHODS | {"POST"}

# Every wait between two attempts goes through here (tests record the waits instead).
_sleep: Callable[[float], None] = time.sleep


class ClientRetry(Retry):
    """``Retry`` whose waits go through ``jobyard.retry._sleep``; otherwise urllib3's own."""

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            _sleep(retry_after)
            return True
        return False

    def _sleep_backoff(self) -> None:
        backoff = self.get_backoff_time()
        if backoff > 0:
            _sleep(backoff)


def make_retry(
    total: int = 4,
    *,
    methods: Collection[str] = READ_METHODS,
    backoff_factor: float = 0.5,
    backoff_max: float = 30.0,
    backoff_jitter: float = 0.5,
    retry_after_max: float = 60.0,
) -> ClientRetry:
    """A policy of ``total`` retries: waits of ``backoff_factor * 2**(n-1)`` seconds (at most
    ``backoff_max``) plus up to ``backoff_jitter`` at random; a ``Retry-After`` is honoured up
    to ``retry_after_max`` seconds. When the retries run out the last answer is returned
    (and becomes a typed error), or the connection error raised."""
    return ClientRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        redirect=0,
        allowed_methods=frozenset(methods),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_jitter,
        retry_after_max=retry_after_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
