"""The worker runner: poll a space, run a function per job in threads, report the outcome.

    from jobyard import Worker

    def send_email(job):
        job.progress(10, "rendering")
        job.log("info", "sending", to=job.payload["to"])
        return {"sent": True}

    Worker(send_email, url=..., token=..., space=..., concurrency=8).run()

What the runner does for each job: acks it (or asks the poll to), calls ``function(job)`` with a
``JobHandle``, sends keepalives from a background thread while the function runs, completes
the job with the return value, or fails it with the exception as ``{type, message, traceback}``
(``retry=True``; raise ``PermanentFailure`` for ``retry=False``). A job that was killed, or that
goes dead, gets one log line from the worker (``jobyard.worker``), and a dead one a ``fatal``
line in the job's own log too (the server refuses lines for a killed job). Every call carries the job's claim id, so a
worker whose lease ran out can never complete someone else's attempt.

On SIGTERM or Ctrl-C it stops polling, lets running jobs finish within ``grace_period``
seconds, and fails the rest back to the queue (they retry). A second signal skips the wait.
When the server is unreachable it backs off exponentially with jitter.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import errors
from .client import Client

__all__ = ["JobHandle", "JobLogHandler", "Worker", "backoff_delay", "current_job"]

log = logging.getLogger("jobyard.worker")

LOG_LEVELS = {"trace", "debug", "info", "warn", "error", "fatal"}
_LEVEL_ALIASES = {"warning": "warn", "critical": "fatal", "exception": "error"}
# Lines kept in memory while the server is unreachable; older ones are dropped beyond this.
MAX_BUFFERED_LOG_LINES = 10_000
SHUTDOWN_ERROR = "worker stopped before the job finished"


def backoff_delay(failures: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with "equal jitter": between half and all of min(cap, base*2^n)."""
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_current = threading.local()


def current_job() -> JobHandle | None:
    """The job the calling thread is running for a Worker, if any."""
    return getattr(_current, "handle", None)


class JobLogHandler(logging.Handler):
    """Ships ``logging`` records made while a job runs to that job's logs.

    ``logging.getLogger().addHandler(JobLogHandler())`` once, and ``log.info(...)`` inside a job
    function (in its own thread) lands in the job's log lines, with the logger name as an
    attribute. Records outside a job, and the client's own (``jobyard.*``), are ignored.
    """

    def emit(self, record: logging.LogRecord) -> None:
        handle = current_job()
        if handle is None or record.name.startswith("jobyard"):
            return
        if record.levelno >= logging.CRITICAL:
            level = "fatal"
        elif record.levelno >= logging.ERROR:
            level = "error"
        elif record.levelno >= logging.WARNING:
            level = "warn"
        elif record.levelno >= logging.INFO:
            level = "info"
        elif record.levelno >= logging.DEBUG:
            level = "debug"
        else:
            level = "trace"
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            handle.log(level, message, logger=record.name)
        except Exception:
            self.handleError(record)


class JobHandle:
    """What a job function receives: the job's fields and the calls it may make while running.

    Calls raise ``JobKilled`` or ``StaleClaim`` when the job was killed or its lease went to
    another worker; let them propagate and the runner drops the job quietly. ``cancelled`` is
    set in the same cases (also when a keepalive learns it), and ``stopping`` when the worker
    is shutting down: long functions may check them to stop early.
    """

    def __init__(self, worker: Worker, descriptor: Mapping[str, Any]) -> None:
        self._worker = worker
        self.client: Client = worker.client
        self.descriptor = dict(descriptor)
        self.id: str = descriptor["id"]
        self.name: str = descriptor.get("name", "")
        self.payload: Any = descriptor.get("payload")
        # As the server counts (the first attempt is 0); a descriptor without it: 0.
        self.attempt_number: int = int(descriptor.get("attemptNumber") or 0)
        self.max_retries: int | None = descriptor.get("maxRetries")
        self.timeout_seconds: int = int(descriptor.get("timeoutSeconds") or 300)
        self.created_at: str | None = descriptor.get("createdAt")
        self.claim_id: str | None = descriptor.get("claimId")
        # The jobs this one waited for (dependsOn): [{id, name, status, result, ...}].
        self.parents: list[dict[str, Any]] = list(descriptor.get("parents") or [])
        self.cancelled = threading.Event()
        # "killed" or "stale_claim" once the server said so (see cancel()).
        self.cancel_reason: str | None = None
        self.stopping = worker._stopping
        self._log_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._log_buffer: list[dict[str, Any]] = []
        self._log_first_at: float | None = None
        # Guards the hand-over between the job thread finishing and a shutdown failing the
        # job back: whichever takes it first reports the outcome, the other stays silent.
        self._outcome_lock = threading.Lock()
        self._outcome_taken = False
        self.started = False
        self.next_keepalive = 0.0

    def __repr__(self) -> str:
        return f"<JobHandle {self.name} {self.id} attempt {self.attempt_number}>"

    @property
    def keepalive_interval(self) -> float:
        if self._worker.keepalive_interval:
            return self._worker.keepalive_interval
        # A third of the timeout leaves two chances before the deadline passes.
        return max(0.5, min(self.timeout_seconds / 3, 60.0))

    def cancel(self, exc: BaseException | None = None) -> None:
        """The server told us the job is no longer ours: killed, or its lease went elsewhere."""
        if self.cancel_reason is None:
            self.cancel_reason = "killed" if isinstance(exc, errors.JobKilled) else "stale_claim"
        self.cancelled.set()

    def _touched(self) -> None:
        # progress and checkpoint reset the execution deadline on the server as well.
        self.next_keepalive = time.monotonic() + self.keepalive_interval

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._worker._with_retries(fn, *args, claim_id=self.claim_id, **kwargs)
        except (errors.JobKilled, errors.StaleClaim) as exc:
            self.cancel(exc)
            raise

    def progress(self, percent: float, message: str, sub: Mapping[str, Any] | None = None) -> None:
        """Report progress (0-100 and a message; ``sub`` = ``{stage: {percent, message?}}``)."""
        self._call(self.client.progress, self.id, percent, message, sub)
        self._touched()

    def checkpoint(self, data: Mapping[str, Any]) -> None:
        """Save a checkpoint; a later attempt finds it in the job's events."""
        self._call(self.client.checkpoint, self.id, data)
        self._touched()

    def event(self, type: str, data: Any = None) -> None:
        """Record a custom event, stored and streamed."""
        self._call(self.client.event, self.id, type, data)

    def keepalive(self, extend_seconds: float | None = None) -> None:
        self._call(self.client.keepalive, self.id, extend_seconds)
        self._touched()

    def log(self, level: str, message: str, **attrs: Any) -> None:
        """Buffer a log line; lines go out as NDJSON in batches (and before the outcome)."""
        level = _LEVEL_ALIASES.get(level.lower(), level.lower())
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {sorted(LOG_LEVELS)}, not {level!r}")
        line = {**attrs, "level": level, "message": str(message), "timestamp": _now_iso()}
        with self._log_lock:
            if not self._log_buffer:
                self._log_first_at = time.monotonic()
            self._log_buffer.append(line)
            full = len(self._log_buffer) >= self._worker.log_batch_size
        if full:
            self.flush_logs()

    def flush_logs(self) -> None:
        """Send the buffered lines now. Logs are best effort: a failure keeps them for later."""
        # One batch in flight at a time (the job thread and the keepalive thread both flush):
        # the server numbers lines in arrival order, so batches must not overtake each other.
        with self._send_lock:
            with self._log_lock:
                lines, self._log_buffer = self._log_buffer, []
                self._log_first_at = None
            if not lines:
                return
            try:
                self.client.send_logs(self.id, lines, claim_id=self.claim_id)
            except (errors.JobKilled, errors.StaleClaim) as exc:
                self.cancel(exc)
            except errors.TRANSIENT as exc:
                log.warning("could not send %d log lines of job %s: %s", len(lines), self.id, exc)
                with self._log_lock:
                    self._log_buffer = (lines + self._log_buffer)[-MAX_BUFFERED_LOG_LINES:]
                    self._log_first_at = self._log_first_at or time.monotonic()
            except errors.JobyardError as exc:
                log.warning("log lines of job %s refused: %s", self.id, exc)

    def _logs_due(self, now: float) -> bool:
        with self._log_lock:
            first = self._log_first_at
        return first is not None and now - first >= self._worker.log_flush_interval

    def _take_outcome(self) -> bool:
        with self._outcome_lock:
            if self._outcome_taken:
                return False
            self._outcome_taken = True
            return True


class Worker:
    """Runs ``function(job)`` for the jobs of a space. See the module docstring."""

    def __init__(
        self,
        function: Callable[[JobHandle], Any],
        *,
        client: Client | None = None,
        url: str | None = None,
        token: str | None = None,
        space: str | None = None,
        concurrency: int = 1,
        names: str | Iterable[str] | None = None,
        wait_seconds: float = 10.0,
        idle_interval: float = 1.0,
        grace_period: float = 30.0,
        keepalive: bool = True,
        keepalive_interval: float | None = None,
        ack_on_poll: bool = True,
        log_batch_size: int = 100,
        log_flush_interval: float = 1.0,
        max_backoff: float = 30.0,
        call_retry_seconds: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.function = function
        self.client = client or Client(url, token, space, pool_size=concurrency + 4)
        self.concurrency = concurrency
        self.names = [names] if isinstance(names, str) else (list(names) if names else None)
        self.wait_seconds = max(0.0, min(20.0, wait_seconds))
        self.idle_interval = idle_interval
        self.grace_period = grace_period
        self.keepalive_enabled = keepalive
        self.keepalive_interval = keepalive_interval
        self.ack_on_poll = ack_on_poll
        self.log_batch_size = max(1, log_batch_size)
        self.log_flush_interval = log_flush_interval
        self.max_backoff = max_backoff
        self.call_retry_seconds = call_retry_seconds

        self._stopping = threading.Event()  # stop taking work
        self._force = threading.Event()  # skip the grace period
        self._lock = threading.Condition()
        self._active: dict[str, JobHandle] = {}
        self._threads: set[threading.Thread] = set()
        self._keepalive_thread: threading.Thread | None = None
        self._keepalive_wake = threading.Event()
        self._closed = threading.Event()
        self._stop_at: float | None = None
        self._poll_error: BaseException | None = None
        self.stats = {"completed": 0, "failed": 0, "dropped": 0, "failed_back": 0}

    # --- public --------------------------------------------------------------------------

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def has_capacity(self) -> bool:
        return not self._stopping.is_set() and self.active < self.concurrency

    def stop(self, *, force: bool = False) -> None:
        """Stop taking work; ``force`` also skips the grace period for running jobs."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._stopping.set()
        if force:
            self._force.set()
        with self._lock:
            self._lock.notify_all()

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Poll and run jobs until ``stop()``, SIGTERM or Ctrl-C; then shut down cleanly.

        Raises what made polling impossible (``AuthError``, ``ScopeError`` ...), after the
        shutdown.
        """
        restore = self._install_signals() if install_signal_handlers else {}
        self._start_keepalive()
        self._poll_error = None
        # Polling runs in a thread of its own so that a long poll in flight never delays the
        # reaction to a signal; a graceful stop still waits for it, because the jobs it may
        # bring back are already claimed (and acked) for this worker.
        poller = threading.Thread(target=self._poll_thread, name="jobyard-poller", daemon=True)
        poller.start()
        try:
            while poller.is_alive() and not self._force.is_set():
                poller.join(timeout=0.5)
        finally:
            try:
                self._shutdown()
            finally:
                for signum, handler in restore.items():
                    signal.signal(signum, handler)
        if self._poll_error is not None:
            raise self._poll_error

    def _poll_thread(self) -> None:
        try:
            self._poll_loop()
        except BaseException as exc:  # handed to run(), which raises it after the shutdown
            self._poll_error = exc
            self.stop()

    def submit(self, descriptor: Mapping[str, Any]) -> threading.Thread:
        """Run one already-claimed job in a thread of its own (a push wake uses this)."""
        self._start_keepalive()
        handle = JobHandle(self, descriptor)
        with self._lock:
            self._active[handle.id] = handle
        thread = threading.Thread(
            target=self._run_job, args=(handle,), name=f"jobyard-job-{handle.id}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def process(self, descriptor: Mapping[str, Any]) -> None:
        """Run one already-claimed job in the calling thread, outcome reported."""
        self._start_keepalive()
        handle = JobHandle(self, descriptor)
        with self._lock:
            self._active[handle.id] = handle
        self._run_job(handle)

    def close(self) -> None:
        """Stop the keepalive thread (after ``submit``/``process`` without ``run``)."""
        self._closed.set()
        self._keepalive_wake.set()

    # --- polling -------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        restore: dict[int, Any] = {}

        def on_signal(signum: int, frame: Any) -> None:
            if self._stopping.is_set():
                log.warning("second signal: failing running jobs back now")
                self.stop(force=True)
            else:
                log.info(
                    "signal %s: no new jobs; waiting up to %ss for %d running",
                    signum,
                    self.grace_period,
                    self.active,
                )
                self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.signal(signum, on_signal)
        return restore

    def _wait_for_slot(self) -> int:
        """Free slots, waiting for one; 0 when stopping."""
        with self._lock:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._active)
                if free > 0:
                    return free
                self._lock.wait(timeout=1.0)
        return 0

    def _poll_loop(self) -> None:
        failures = 0
        long_poll = self.wait_seconds > 0
        ack_on_poll = self.ack_on_poll
        downgraded = False
        while not self._stopping.is_set():
            free = self._wait_for_slot()
            if not free:
                break
            started = time.monotonic()
            try:
                jobs = self.client.poll(
                    count=min(free, 50),
                    names=self.names,
                    wait_seconds=self.wait_seconds if long_poll else None,
                    ack=ack_on_poll,
                )
            except errors.ValidationError:
                # A server without the poll fields beyond the emit.run API may refuse them: once, retry
                # with the plain emit.run poll before giving up.
                if downgraded or not (long_poll or ack_on_poll):
                    raise
                log.warning("server refused waitSeconds/ack on poll; using plain polling")
                long_poll = ack_on_poll = False
                downgraded = True
                continue
            except errors.RateLimited as exc:
                failures += 1
                delay = exc.retry_after or backoff_delay(failures, cap=self.max_backoff)
                log.warning("rate limited; polling again in %.1fs", delay)
                self._stopping.wait(delay)
                continue
            except errors.TRANSIENT as exc:
                failures += 1
                delay = backoff_delay(failures, cap=self.max_backoff)
                log.warning("poll failed (%s); retrying in %.1fs", exc, delay)
                self._stopping.wait(delay)
                continue
            failures = 0
            for descriptor in jobs:
                self.submit(descriptor)
            if not jobs and time.monotonic() - started < min(1.0, self.wait_seconds or 1.0):
                # An empty answer that came back at once: the server does not long-poll (or
                # was told not to). Don't spin.
                self._stopping.wait(self.idle_interval * random.uniform(0.8, 1.2))

    # --- one job -------------------------------------------------------------------------

    def _with_retries(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn``, retrying transient errors with backoff for ``call_retry_seconds``."""
        give_up = time.monotonic() + self.call_retry_seconds
        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except errors.TRANSIENT as exc:
                failures += 1
                delay = (
                    exc.retry_after
                    if isinstance(exc, errors.RateLimited) and exc.retry_after
                    else backoff_delay(failures, cap=self.max_backoff)
                )
                if time.monotonic() + delay > give_up or self._force.is_set():
                    raise
                time.sleep(delay)

    def _run_job(self, handle: JobHandle) -> None:
        try:
            if not self._start(handle):
                return
            outcome = self._call_function(handle)
            handle.flush_logs()
            if not handle._take_outcome():
                return  # a shutdown already failed it back
            self._report(handle, *outcome)
        except Exception:  # a bug here must not kill the thread silently
            log.exception("job %s: unexpected error in the runner", handle.id)
        finally:
            with self._lock:
                self._active.pop(handle.id, None)
                self._threads.discard(threading.current_thread())
                self._lock.notify_all()

    def _start(self, handle: JobHandle) -> bool:
        if handle.descriptor.get("status") != "running":
            try:
                self._with_retries(self.client.ack, handle.id, claim_id=handle.claim_id)
            except errors.InvalidTransition:
                pass  # already running: the poll's ack went through
            except (errors.Conflict, errors.NotFound) as exc:
                log.info("job %s gone before it started: %s", handle.id, exc)
                self._count("dropped")
                return False
            except errors.JobyardError as exc:
                # Unacked, the job returns to the queue at its delivery deadline.
                log.warning("could not ack job %s: %s", handle.id, exc)
                self._count("dropped")
                return False
        handle.started = True
        handle._touched()
        self._keepalive_wake.set()
        return True

    def _call_function(self, handle: JobHandle) -> tuple[str, Any, bool]:
        """("complete", result, _) or ("fail", error, retry)."""
        _current.handle = handle
        try:
            result = self.function(handle)
        except (errors.JobKilled, errors.StaleClaim) as exc:
            handle.cancel(exc)
            return ("drop", str(exc), False)
        except Exception as exc:
            permanent = isinstance(exc, errors.PermanentFailure)
            info = errors.error_info(exc)
            if not permanent:
                log.warning(
                    "job %s (%s) failed: %s: %s",
                    handle.id,
                    handle.name,
                    info["type"],
                    info["message"],
                )
            handle.log(
                "error", info["message"], exception=info["type"], traceback=info["traceback"]
            )
            return ("fail", info, not permanent)
        finally:
            _current.handle = None
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            # The same return value would fail every attempt: no point retrying.
            message = f"result is not JSON serializable: {exc}"
            return ("fail", {"type": type(exc).__name__, "message": message}, False)
        return ("complete", result, False)

    def _report(self, handle: JobHandle, kind: str, value: Any, retry: bool) -> None:
        if kind == "drop" or handle.cancelled.is_set() and kind != "complete":
            self._dropped(handle)
            return
        try:
            if kind == "complete":
                self._with_retries(self.client.complete, handle.id, value, claim_id=handle.claim_id)
                self._count("completed")
            else:
                answer = self._fail(handle, value, retry)
                self._count("failed")
                if isinstance(answer, dict) and answer.get("status") == "dead":
                    self._dead(handle, value, retry)
        except errors.Conflict as exc:
            # Killed, timed out and handed to another worker, or already final.
            if isinstance(exc, (errors.JobKilled, errors.StaleClaim)):
                handle.cancel(exc)
                self._dropped(handle)
                return
            if kind == "complete" and self._completed_already(handle):
                # A complete that went through, and whose answer was lost: the retry got 409.
                self._count("completed")
                return
            log.info("job %s: outcome not accepted: %s", handle.id, exc)
            self._count("dropped")
        except errors.JobyardError as exc:
            log.error("job %s: could not report the outcome: %s", handle.id, exc)
            self._count("dropped")

    def _completed_already(self, handle: JobHandle) -> bool:
        try:
            job = self.client.get(handle.id)
        except errors.JobyardError:
            return False
        return job.get("status") == "completed"

    def _fail(self, handle: JobHandle, error: Any, retry: bool) -> Any:
        try:
            return self._with_retries(
                self.client.fail, handle.id, error, retry=retry, claim_id=handle.claim_id
            )
        except errors.ValidationError:
            if isinstance(error, str):
                raise
            # A server that takes only a string error: the message, the rest is in the logs.
            text = (
                f"{error.get('type')}: {error.get('message')}"
                if error.get("type")
                else str(error.get("message"))
            )
            return self._with_retries(
                self.client.fail, handle.id, text, retry=retry, claim_id=handle.claim_id
            )

    def _dead(self, handle: JobHandle, error: Any, retry: bool) -> None:
        """One line here and one in the job's log: the job will not run again by itself."""
        info = errors.parse_error(error) or {"type": None, "message": str(error)}
        what = f"{info['type']}: {info['message']}" if info.get("type") else info["message"]
        why = "no retries left" if retry else "permanent failure"
        log.error(
            "job %s (%s) is dead after attempt %s (%s): %s",
            handle.id,
            handle.name,
            handle.attempt_number,
            why,
            what,
        )
        try:
            # No claim id: the claim ended with the fail, and the server keeps lines of dead jobs.
            self.client.send_logs(
                handle.id,
                [
                    {
                        "level": "fatal",
                        "message": f"dead ({why}): {what}",
                        "timestamp": _now_iso(),
                        "worker": "jobyard",
                    }
                ],
            )
        except errors.JobyardError as exc:
            log.warning("job %s: could not log its death: %s", handle.id, exc)

    def _dropped(self, handle: JobHandle) -> None:
        if handle.cancel_reason == "killed":
            # The server refuses log lines for a killed job: this line is the worker's own.
            log.warning(
                "job %s (%s) was killed during attempt %s; its outcome is dropped",
                handle.id,
                handle.name,
                handle.attempt_number,
            )
        else:
            log.info(
                "job %s (%s): the claim went to another worker; outcome dropped",
                handle.id,
                handle.name,
            )
        self._count("dropped")

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    # --- keepalive -----------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        with self._lock:
            if self._keepalive_thread is not None and self._keepalive_thread.is_alive():
                return
            self._closed.clear()
            self._keepalive_thread = threading.Thread(
                target=self._keepalive_loop, name="jobyard-keepalive", daemon=True
            )
            self._keepalive_thread.start()

    def _keepalive_loop(self) -> None:
        while not self._closed.is_set():
            now = time.monotonic()
            next_due = now + 1.0
            with self._lock:
                handles = list(self._active.values())
            for handle in handles:
                if not handle.started or handle.cancelled.is_set():
                    continue
                if handle._logs_due(now):
                    handle.flush_logs()
                if self.keepalive_enabled:
                    if now >= handle.next_keepalive:
                        self._send_keepalive(handle)
                    next_due = min(next_due, handle.next_keepalive)
                next_due = min(next_due, now + self.log_flush_interval)
            self._keepalive_wake.wait(timeout=max(0.05, next_due - time.monotonic()))
            self._keepalive_wake.clear()

    def _send_keepalive(self, handle: JobHandle) -> None:
        try:
            self.client.keepalive(handle.id, claim_id=handle.claim_id)
            handle._touched()
        except (errors.JobKilled, errors.StaleClaim, errors.NotFound) as exc:
            handle.cancel(exc)
        except errors.InvalidTransition:
            pass  # finishing right now
        except errors.JobyardError as exc:
            # Try again soon, well before the deadline.
            log.warning("keepalive of job %s failed: %s", handle.id, exc)
            handle.next_keepalive = time.monotonic() + max(0.25, handle.keepalive_interval / 3)

    # --- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.stop()
        # The grace period counts from the stop request, not from the end of the last poll.
        deadline = (self._stop_at or time.monotonic()) + self.grace_period
        with self._lock:
            while self._active and not self._force.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(timeout=min(left, 0.5))
            leftovers = list(self._active.values())
        reporting = []
        for handle in leftovers:
            if not handle._take_outcome():
                reporting.append(handle)  # its thread is reporting the outcome right now
                continue
            handle.flush_logs()
            try:
                self.client.fail(handle.id, SHUTDOWN_ERROR, retry=True, claim_id=handle.claim_id)
                self._count("failed_back")
                log.warning("job %s failed back to the queue at shutdown", handle.id)
            except errors.JobyardError as exc:
                log.error("job %s: could not fail it back: %s", handle.id, exc)
        # Threads that were reporting their outcome get a short while to finish.
        end = time.monotonic() + 10
        with self._lock:
            while any(h.id in self._active for h in reporting) and time.monotonic() < end:
                self._lock.wait(timeout=0.2)
        self.close()
