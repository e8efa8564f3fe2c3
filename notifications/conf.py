"""Notification tunables. Read at call time (never at import) so override_settings works.

Each can be set as a Django setting of the same name; docs/notifications.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings


def get(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


@dataclass(frozen=True)
class Policy:
    """Timeouts and retry bounds of one channel."""

    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_attempts: int
    backoff_base: float  # seconds before the 2nd attempt; doubles each time
    backoff_max: float


def policy(channel: str) -> Policy:
    defaults = {
        # Slack: a few tries over a few minutes.
        "slack": Policy(5, 10, 15, 5, 10, 300),
        # Push is a best-effort wake: one quick try and at most one retry.
        "push": Policy(2, 3, 5, 2, 5, 5),
        # Callbacks: up to 5 attempts with exponential backoff (docs/notifications.md).
        "callback": Policy(5, 10, 15, 5, 10, 600),
    }
    base = defaults[channel]
    overrides = get("NOTIFICATIONS_POLICIES", {}).get(channel, {})
    return Policy(**{**base.__dict__, **overrides})


def push_max_age() -> float:
    """Seconds after its event a push is still worth sending; older ones are dropped."""
    return float(get("NOTIFICATIONS_PUSH_MAX_AGE", 60))


def max_retry_after() -> float:
    """The longest Retry-After honoured; longer ones are capped to it."""
    return float(get("NOTIFICATIONS_MAX_RETRY_AFTER", 900))


def enqueue_lease() -> float:
    """Seconds a row handed to Celery may wait before flush_outbox assumes the message lost."""
    return float(get("NOTIFICATIONS_ENQUEUE_LEASE", 300))


def run_lease() -> float:
    """Seconds a running delivery task owns its row (above CELERY_TASK_TIME_LIMIT)."""
    return float(get("NOTIFICATIONS_RUN_LEASE", int(get("CELERY_TASK_TIME_LIMIT", 120)) + 60))


def broker_backoff() -> float:
    """After a failed publish, seconds this process skips publishing (rows wait for the flush)."""
    return float(get("NOTIFICATIONS_BROKER_BACKOFF", 15))
