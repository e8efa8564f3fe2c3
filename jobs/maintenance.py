"""The maintenance loop (`python manage.py run_scheduler`): the periodic steps that keep the
queue moving and tidy.

Each step is a function registered with `register(name, func, every=seconds)`, all of them in
config/apps.py, the one place that wires: staging (scheduled jobs whose time came), rescue (jobs
past their delivery or execution deadline), retention, numbering events whose publisher died,
firing recurring schedules, flushing the notification outbox. Steps run in one loop, isolated:
one that raises is logged and does not stop the others. Every step must be safe with several
scheduler processes running at once (row locks, SKIP LOCKED, conditional updates), since the
Procfile's scheduler may be scaled out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import close_old_connections

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    func: Callable[[], object]
    every: float
    next_run: float = field(default=0.0)


steps: dict[str, Step] = {}


def register(name: str, func: Callable[[], object], every: float = 1.0) -> None:
    """Run FUNC about every EVERY seconds in the scheduler process (re-registering replaces)."""
    steps[name] = Step(name=name, func=func, every=max(0.1, float(every)))


def run_due(now: float | None = None) -> dict[str, object]:
    """Run every step that is due; returns {name: result or the exception}."""
    now = time.monotonic() if now is None else now
    results: dict[str, object] = {}
    for task in list(steps.values()):
        if now < task.next_run:
            continue
        task.next_run = now + task.every
        try:
            results[task.name] = task.func()
        except Exception as exc:  # one failing task must not stop the loop
            log.exception("maintenance step failed", extra={"task": task.name})
            results[task.name] = exc
    return results


def run_forever(stop: threading.Event, tick: float = 0.1) -> None:
    """Loop until STOP is set; the current step finishes first (clean stop on SIGTERM)."""
    log.info("scheduler started", extra={"tasks": sorted(steps)})
    while not stop.is_set():
        # Drop a connection a failed task left broken, or one past CONN_MAX_AGE.
        close_old_connections()
        run_due()
        due = min((t.next_run for t in steps.values()), default=time.monotonic() + 1)
        stop.wait(min(max(due - time.monotonic(), 0.01), tick * 10))
    log.info("scheduler stopped")
