"""The scheduler process: a loop that runs the sweeper and every registered periodic task.

Other apps add their periodic work with `register_periodic(name, func, every=seconds)` (from
their AppConfig.ready(), say): retention, recurring schedules, outbox sweeps. Each task runs in
the same loop, isolated: one that raises is logged and does not stop the others. Every task must
be safe with several scheduler processes running at once (row locks, SKIP LOCKED, conditional
updates), since the Procfile's scheduler may be scaled out.
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
class PeriodicTask:
    name: str
    func: Callable[[], object]
    every: float
    next_run: float = field(default=0.0)


periodic_tasks: dict[str, PeriodicTask] = {}


def register_periodic(name: str, func: Callable[[], object], every: float = 1.0) -> None:
    """Run FUNC about every EVERY seconds in the scheduler process (re-registering replaces)."""
    periodic_tasks[name] = PeriodicTask(name=name, func=func, every=max(0.1, float(every)))


def _sweep() -> object:
    from . import services

    return services.sweep()


register_periodic("jobs.sweep", _sweep, every=0.5)


def run_due(now: float | None = None) -> dict[str, object]:
    """Run every task that is due; returns {name: result or the exception}."""
    now = time.monotonic() if now is None else now
    results: dict[str, object] = {}
    for task in list(periodic_tasks.values()):
        if now < task.next_run:
            continue
        task.next_run = now + task.every
        try:
            results[task.name] = task.func()
        except Exception as exc:  # one failing task must not stop the loop
            log.exception("periodic task failed", extra={"task": task.name})
            results[task.name] = exc
    return results


def run_forever(stop: threading.Event, tick: float = 0.1) -> None:
    """Loop until STOP is set; the current task finishes first (clean stop on SIGTERM)."""
    log.info("scheduler started", extra={"tasks": sorted(periodic_tasks)})
    while not stop.is_set():
        # Drop a connection a failed task left broken, or one past CONN_MAX_AGE.
        close_old_connections()
        run_due()
        due = min((t.next_run for t in periodic_tasks.values()), default=time.monotonic() + 1)
        stop.wait(min(max(due - time.monotonic(), 0.01), tick * 10))
    log.info("scheduler stopped")
