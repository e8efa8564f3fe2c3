"""Threads for tests: an exception raised on a thread fails the test.

A plain `threading.Thread` whose target raises just dies, printing to stderr, and the test goes
on as if nothing happened. Threads started here keep what their target returned or raised;
`join_all()` (or `Worker.result()`) joins them and fails the test when any of them raised, or is
still running after the timeout. Each thread closes its database connections when it ends (a
thread has connections of its own, and an open one keeps the test database from being flushed
or dropped).

    results = threads.run_together(8, create_one)          # 8 threads at once, joined, checked

    poller = threads.spawn(long_poll)                      # started now
    ...
    answer = poller.result()                               # joined and checked
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

DEFAULT_TIMEOUT = 120.0


class ThreadFailed(AssertionError):
    """One or more threads raised; the first one's exception is the cause."""


class Worker(threading.Thread):
    """A thread that keeps what its target returned (`value`) or raised (`error`)."""

    def __init__(
        self, target: Callable[..., Any], *args: Any, close_db: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(name=f"test-{getattr(target, '__name__', 'thread')}", daemon=True)
        self._call = (target, args, kwargs)
        self._close_db = close_db
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args, kwargs = self._call
        try:
            self.value = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - surfaced by join_all() in the test
            self.error = exc
        finally:
            if self._close_db:
                connections.close_all()

    def result(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Join; the target's return value. Fails the test if it raised or is still running."""
        return join_all([self], timeout)[0]


def spawn(target: Callable[..., Any], *args: Any, close_db: bool = True, **kwargs: Any) -> Worker:
    """Start TARGET(*ARGS, **KWARGS) on a thread of its own."""
    worker = Worker(target, *args, close_db=close_db, **kwargs)
    worker.start()
    return worker


def join_all(workers: Iterable[Worker], timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """Join WORKERS (TIMEOUT in all); their return values, in order.

    Fails the test with every exception the threads raised (the first as the cause, so its
    traceback is shown), or when one is still running after TIMEOUT.
    """
    workers = list(workers)
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    errors = [worker.error for worker in workers if worker.error is not None]
    if errors:
        raise ThreadFailed(
            f"{len(errors)} of {len(workers)} thread(s) raised: {errors!r}"
        ) from errors[0]
    alive = [worker.name for worker in workers if worker.is_alive()]
    if alive:
        raise ThreadFailed(f"{len(alive)} thread(s) still running after {timeout}s: {alive}")
    return [worker.value for worker in workers]


def run_together(
    n: int, target: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT
) -> list[Any]:
    """Run TARGET(*ARGS) on N threads at once; their return values, checked as join_all()."""
    return join_all([spawn(target, *args) for _ in range(n)], timeout)
