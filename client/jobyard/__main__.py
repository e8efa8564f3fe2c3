"""Command line: ``jobyard <command>`` (or ``python -m jobyard <command>``).

    jobyard jobs list --status dead --name email.send
    jobyard jobs get JOB_ID
    jobyard jobs logs JOB_ID --follow
    jobyard jobs retry JOB_ID | jobyard jobs kill JOB_ID --reason "bad input"
    jobyard enqueue --name email.send --payload '{"to": "a@example.com"}' --wait
    jobyard schedules list | create NAME --cron "0 9 * * 1" --job-name report.weekly | pause NAME | resume NAME
    jobyard limits get [NAME] | jobyard limits set NAME --concurrency 5 --rate 2
    jobyard worker --concurrency 8 app.tasks:handle
    jobyard push --listen 0.0.0.0:8080 app.tasks:handle

``--url``, ``--token`` and ``--space`` default to JOBYARD_URL, JOBYARD_TOKEN and JOBYARD_SPACE.
Exit status: 0 done, 1 the job failed (dead or killed) or the server refused the call, 2 a
usage error (a missing flag or variable is named).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import errors
from .client import FINAL_STATUSES, Client

log = logging.getLogger("jobyard")

PROG = "jobyard"
# Poll pauses when a job's stream cannot be used; tests replace it.
_sleep: Callable[[float], None] = time.sleep
POLL_INTERVAL = 1.0
# What each connection setting is called on the command line and in the environment.
SETTINGS = {
    "url": ("--url", "JOBYARD_URL", "server base URL"),
    "token": ("--token", "JOBYARD_TOKEN", "API key (emit_...)"),
    "space": ("--space", "JOBYARD_SPACE", "space id"),
}


class UsageError(Exception):
    """A missing or bad argument: exit 2 with the message."""


def load_function(spec: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``module:Class.method``) to the callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise argparse.ArgumentTypeError(f"expected module:function, got {spec!r}")
    # Like `python -m`, let modules in the current directory be found.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise argparse.ArgumentTypeError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise argparse.ArgumentTypeError(f"{module_name!r} has no {attr!r}") from exc
    if not callable(target):
        raise argparse.ArgumentTypeError(f"{spec!r} is not callable")
    return target


def _json_arg(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


# --- the parser ---------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    for dest, (flag, env, text) in SETTINGS.items():
        group.add_argument(flag, dest=dest, default=None, help=f"{text} (default: ${env})")
    group.add_argument(
        "--log-level", default=None, help="logging level (default: $JOBYARD_LOG_LEVEL or INFO)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Jobyard from a terminal: follow and manage jobs, schedules and limits; "
        "run workers and push receivers.",
        epilog="--url, --token and --space default to JOBYARD_URL, JOBYARD_TOKEN, JOBYARD_SPACE. "
        "`jobyard COMMAND --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(group: Any, name: str, text: str, **kw: Any) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[common], help=text, description=text, **kw)

    # jobs
    jobs = sub.add_parser("jobs", help="list, inspect, follow, retry and kill jobs")
    jobs_sub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmd = add(jobs_sub, "list", "list jobs, newest first")
    cmd.add_argument(
        "--status",
        action="append",
        type=_names,
        help="only these statuses (repeat or comma-separate)",
    )
    cmd.add_argument("--name", help="only jobs of this name")
    cmd.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cmd.add_argument("--all", action="store_true", help="every matching job, page by page")
    cmd.add_argument("--json", action="store_true", help="one JSON object per line")
    cmd = add(jobs_sub, "get", "show a job (JSON, with its events)")
    cmd.add_argument("job_id")
    cmd = add(jobs_sub, "logs", "show a job's log lines")
    cmd.add_argument("job_id")
    cmd.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new lines until the job ends"
    )
    cmd.add_argument("--level", help="only this level (trace, debug, info, warn, error, fatal)")
    cmd.add_argument("--after", type=int, help="lines after this sequence number")
    cmd.add_argument("--json", action="store_true", help="one JSON object per line")
    cmd = add(jobs_sub, "retry", "send a dead or killed job back to the queue")
    cmd.add_argument("job_id")
    cmd = add(jobs_sub, "kill", "kill a job")
    cmd.add_argument("job_id")
    cmd.add_argument("--reason")

    # enqueue
    cmd = add(sub, "enqueue", "create a job (and with --wait, follow it to the end)")
    cmd.add_argument("--name", required=True)
    cmd.add_argument("--payload", type=_json_arg, default=None, help="JSON")
    cmd.add_argument("--max-retries", type=int)
    cmd.add_argument("--timeout-seconds", type=int)
    cmd.add_argument("--scheduled-for", help="ISO 8601 with a timezone")
    cmd.add_argument("--priority", type=int)
    cmd.add_argument("--idempotency-key", help="default: a new key per call")
    cmd.add_argument("--callback-url")
    cmd.add_argument("--backoff", type=_json_arg, help="JSON backoff policy")
    cmd.add_argument(
        "--wait",
        action="store_true",
        help="show live progress, print the final job, exit 1 unless it completed",
    )
    cmd.add_argument("--timeout", type=float, default=None, help="with --wait: give up after N s")
    cmd.add_argument("--no-progress", action="store_true", help="with --wait: no progress bar")

    # schedules
    schedules = sub.add_parser("schedules", help="list, create, pause and resume schedules")
    sched_sub = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmd = add(sched_sub, "list", "list the space's schedules")
    cmd.add_argument("--json", action="store_true", help="the JSON answer")
    cmd = add(sched_sub, "create", "create a schedule")
    cmd.add_argument("name")
    cmd.add_argument("--cron", required=True, help='five fields, e.g. "0 9 * * 1"')
    cmd.add_argument("--job-name", required=True, help="the name of the jobs it creates")
    cmd.add_argument("--payload", type=_json_arg, default=None, help="JSON")
    cmd.add_argument("--job", type=_json_arg, default=None, help="more job fields, JSON")
    cmd.add_argument("--timezone", help="IANA name (default UTC)")
    cmd.add_argument("--overlap", help="allow or skip (a run while the last job is unfinished)")
    cmd.add_argument("--paused", action="store_true", help="create it paused")
    for verb, text in (("pause", "pause a schedule"), ("resume", "resume a schedule")):
        cmd = add(sched_sub, verb, text)
        cmd.add_argument("name")

    # limits
    limits = sub.add_parser("limits", help="show and set per-name flow-control limits")
    limits_sub = limits.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmd = add(limits_sub, "get", "show the limits (of one job name, or all)")
    cmd.add_argument("name", nargs="?")
    cmd = add(limits_sub, "set", "set the limits of a job name")
    cmd.add_argument("name")
    cmd.add_argument("--concurrency", type=int, help="at most N running at once")
    cmd.add_argument("--rate", type=float, help="at most N started per second")
    cmd.add_argument(
        "--key-concurrency", type=int, help="at most N running at once per concurrency key"
    )
    cmd.add_argument("--key-rate", type=float, help="at most N started per second per key")

    # single-job shortcuts kept from earlier versions
    for verb, text in (("get", "show a job"), ("kill", "kill a job"), ("retry", "retry a job")):
        cmd = add(sub, verb, f"{text} (same as `jobs {verb}`)")
        cmd.add_argument("job_id")
        if verb == "kill":
            cmd.add_argument("--reason")
    cmd = add(sub, "wait", "wait for a job to finish; exit 1 unless it completed")
    cmd.add_argument("job_id")
    cmd.add_argument("--timeout", type=float, default=None)

    # runners
    cmd = add(sub, "worker", "run a worker")
    cmd.add_argument("function", help="module:function called with each job")
    cmd.add_argument("--concurrency", "-c", type=int, default=1)
    cmd.add_argument("--names", type=_names, help="only these job names (comma-separated)")
    cmd.add_argument("--wait-seconds", type=float, default=10.0, help="long poll (0-20)")
    cmd.add_argument(
        "--grace-period", type=float, default=30.0, help="seconds running jobs get at shutdown"
    )
    cmd.add_argument("--keepalive-interval", type=float, default=None)
    cmd.add_argument("--no-keepalive", action="store_true")

    cmd = add(sub, "push", "serve a push-wake receiver")
    cmd.add_argument("function", help="module:function called with each job")
    cmd.add_argument("--listen", default="0.0.0.0:8080", help="host:port")
    cmd.add_argument(
        "--secret", default=None, help="push signing secret (default: $JOBYARD_PUSH_SECRET)"
    )
    cmd.add_argument("--signature-header", default=None)
    cmd.add_argument("--concurrency", "-c", type=int, default=4)
    return parser


# Which commands need a space (the others act on a job id).
_NEEDS_SPACE = {
    ("jobs", "list"),
    ("enqueue", None),
    ("schedules", "list"),
    ("schedules", "create"),
    ("schedules", "pause"),
    ("schedules", "resume"),
    ("limits", "get"),
    ("limits", "set"),
    ("worker", None),
}


def _setting(args: argparse.Namespace, dest: str, required: bool) -> str | None:
    flag, env, _ = SETTINGS[dest]
    value = getattr(args, dest, None) or os.environ.get(env) or None
    if required and not value:
        raise UsageError(f"no {SETTINGS[dest][2]}: pass {flag} or set {env}")
    return value


def make_client(args: argparse.Namespace) -> Client:
    needs_space = (args.command, getattr(args, "action", None)) in _NEEDS_SPACE
    return Client(
        _setting(args, "url", True),
        _setting(args, "token", True),
        _setting(args, "space", needs_space),
    )


# --- output -------------------------------------------------------------------------------


def _print(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    out.flush()


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def error_headline(value: Any) -> str:
    info = errors.parse_error(value)
    if not info:
        return ""
    head = f"{info['type']}: {info['message']}" if info.get("type") else info["message"]
    return (head.strip().splitlines() or [""])[0]


def progress_bar(percent: Any, message: str = "", width: int = 30) -> str:
    """``[##########--------------------]  33% message``"""
    try:
        value = max(0.0, min(100.0, float(percent)))
    except (TypeError, ValueError):
        value = 0.0
    filled = int(round(width * value / 100))
    return f"[{'#' * filled}{'-' * (width - filled)}] {value:3.0f}% {message}".rstrip()


class ProgressView:
    """Progress on stderr: one redrawn line on a terminal, a line per change otherwise."""

    def __init__(self, out: TextIO, enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.last: tuple[Any, str] | None = None

    def show(self, progress: Any) -> None:
        if not self.enabled or not isinstance(progress, dict):
            return
        key = (progress.get("percent"), str(progress.get("message") or ""))
        if key == self.last:
            return
        self.last = key
        line = progress_bar(*key)
        self.out.write(f"\r{line}\033[K" if self.tty else line + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.enabled and self.tty and self.last is not None:
            self.out.write("\n")
            self.out.flush()


# --- commands -----------------------------------------------------------------------------


def follow_job(
    client: Client,
    job_id: str,
    *,
    realtime_url: str | None = None,
    timeout: float | None = None,
    on_progress: Callable[[Any], None] = lambda progress: None,
    on_logs: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Follow a job to its end over its stream (polling when the stream is unavailable),
    calling ``on_progress`` with each progress report and ``on_logs`` when lines were added;
    the final job. ``WaitTimeout`` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def check_deadline() -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise errors.WaitTimeout(f"job {job_id} did not finish in time")

    try:
        for message in client.stream(job_id, realtime_url=realtime_url, idle=_idle(deadline)):
            kind = message.get("type")
            if kind == "init":
                # Subscribed: read the job now, so an end just before is not missed.
                on_progress(message.get("progress"))
                job = client.get(job_id)
                if job.get("status") in FINAL_STATUSES:
                    on_logs()
                    return job
            elif kind == "progress":
                on_progress(message.get("data"))
            elif kind == "logs":
                on_logs()
            if kind in FINAL_STATUSES or message.get("status") in FINAL_STATUSES:
                on_logs()
                return client.get(job_id)
            if kind == "idle":
                # Stream messages are best effort: look at the job itself now and then.
                job = client.get(job_id)
                on_progress(job.get("progress"))
                on_logs()
                if job.get("status") in FINAL_STATUSES:
                    return job
            check_deadline()
    except errors.Unreachable as exc:
        log.debug("no job stream (%s); polling", exc)
    while True:
        job = client.get(job_id)
        on_progress(job.get("progress"))
        on_logs()
        if job.get("status") in FINAL_STATUSES:
            return job
        check_deadline()
        _sleep(POLL_INTERVAL)
    raise AssertionError("unreachable")  # pragma: no cover


def _idle(deadline: float | None) -> float:
    if deadline is None:
        return 5.0
    return max(0.1, min(5.0, deadline - time.monotonic()))


def _exit_for(job: dict[str, Any]) -> int:
    if job.get("status") == "completed":
        return 0
    head = error_headline(job.get("error"))
    sys.stderr.write(
        f"job {job.get('id')} {job.get('status')}" + (f": {head}" if head else "") + "\n"
    )
    return 1


def _enqueue(client: Client, args: argparse.Namespace) -> int:
    job = client.create(
        args.name,
        args.payload,
        max_retries=args.max_retries,
        timeout_seconds=args.timeout_seconds,
        scheduled_for=args.scheduled_for,
        priority=args.priority,
        idempotency_key=args.idempotency_key,
        callback_url=args.callback_url,
        backoff=args.backoff,
    )
    if not args.wait:
        _print(job)
        return 0
    view = ProgressView(sys.stderr, enabled=not args.no_progress)
    try:
        final = follow_job(
            client,
            job["id"],
            realtime_url=job.get("realtimeUrl"),
            timeout=args.timeout,
            on_progress=view.show,
        )
    finally:
        view.end()
    _print(final)
    return _exit_for(final)


def _jobs_list(client: Client, args: argparse.Namespace) -> int:
    statuses = [s for group in args.status or [] for s in group] or None
    if args.all:
        jobs: Any = client.iter_jobs(
            status=statuses, name=args.name, page_size=min(100, args.limit or 100)
        )
    else:
        jobs = client.list(status=statuses, name=args.name, limit=args.limit)["jobs"]
    if args.json:
        for job in jobs:
            sys.stdout.write(json.dumps(job, sort_keys=True) + "\n")
        return 0
    rows = [
        [
            job.get("id", ""),
            job.get("status", ""),
            job.get("name", ""),
            str(job.get("attemptNumber", "")),
            job.get("createdAt") or "",
            error_headline(job.get("error"))[:80],
        ]
        for job in jobs
    ]
    sys.stdout.write(_table(rows, ["ID", "STATUS", "NAME", "ATTEMPT", "CREATED", "ERROR"]))
    return 0


def _log_line(line: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(line, sort_keys=True)
    attrs = line.get("attributes") or {}
    extra = "".join(f" {k}={v}" for k, v in attrs.items() if k != "traceback")
    text = f"{line.get('timestamp', '')} {str(line.get('level', '')).upper():<5} {line.get('message', '')}{extra}"
    if attrs.get("traceback"):
        text += "\n" + str(attrs["traceback"]).rstrip()
    return text


def _jobs_logs(client: Client, args: argparse.Namespace) -> int:
    after = args.after

    def print_new() -> None:
        nonlocal after
        while True:
            page = client.logs(args.job_id, after=after, level=args.level, limit=500) or {}
            lines = page.get("logs") or []
            for line in lines:
                sys.stdout.write(_log_line(line, args.json) + "\n")
                after = line.get("seq", after)
            sys.stdout.flush()
            if not page.get("hasMore") or not lines:
                return

    print_new()
    if not args.follow:
        return 0
    job = client.get(args.job_id)
    if job.get("status") in FINAL_STATUSES:
        return 0
    follow_job(client, args.job_id, on_logs=print_new)
    return 0


def _schedules(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        items = client.schedules()
        if args.json:
            _print(items)
            return 0
        rows = [
            [
                s.get("name", ""),
                s.get("cron", ""),
                s.get("timezone", ""),
                "yes" if s.get("enabled") else "paused",
                (s.get("job") or {}).get("name", ""),
                s.get("nextRunAt") or "",
            ]
            for s in items
        ]
        sys.stdout.write(_table(rows, ["NAME", "CRON", "TIMEZONE", "ENABLED", "JOB", "NEXT RUN"]))
        return 0
    if args.action == "create":
        job = dict(args.job or {})
        job["name"] = args.job_name
        if args.payload is not None:
            job["payload"] = args.payload
        _print(
            client.create_schedule(
                args.name,
                args.cron,
                job,
                timezone=args.timezone,
                overlap=args.overlap,
                enabled=False if args.paused else None,
            )
        )
        return 0
    call = client.pause_schedule if args.action == "pause" else client.resume_schedule
    _print(call(args.name))
    return 0


def _limits(client: Client, args: argparse.Namespace) -> int:
    if args.action == "set":
        values = {
            "concurrency": args.concurrency,
            "rate": args.rate,
            "key_concurrency": args.key_concurrency,
            "key_rate": args.key_rate,
        }
        if all(value is None for value in values.values()):
            raise UsageError(
                "limits set: give --concurrency, --rate, --key-concurrency or --key-rate"
            )
        _print(client.set_limit(args.name, **values))
        return 0
    items = client.limits()
    if args.name:
        match = [item for item in items if item.get("name") == args.name]
        if not match:
            sys.stderr.write(f"no limit for {args.name!r}\n")
            return 1
        _print(match[0])
        return 0
    _print(items)
    return 0


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    client = make_client(args)
    command, action = args.command, getattr(args, "action", None)
    if command == "worker":
        return _worker(parser, args, client)
    if command == "push":
        return _push(parser, args, client)
    if command == "enqueue":
        return _enqueue(client, args)
    if command == "jobs" and action == "list":
        return _jobs_list(client, args)
    if command == "jobs" and action == "logs":
        return _jobs_logs(client, args)
    if command == "schedules":
        return _schedules(client, args)
    if command == "limits":
        return _limits(client, args)
    verb = action if command == "jobs" else command
    if verb == "get":
        _print(client.get(args.job_id))
    elif verb == "kill":
        _print(client.kill(args.job_id, args.reason))
    elif verb == "retry":
        _print(client.retry(args.job_id))
    elif verb == "wait":
        job = client.wait(args.job_id, args.timeout)
        _print(job)
        return _exit_for(job)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or os.environ.get("JOBYARD_LOG_LEVEL") or "INFO"
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        return _run(parser, args)
    except UsageError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    except ValueError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    except errors.WaitTimeout as exc:
        sys.stderr.write(f"{PROG}: {exc.message}\n")
        return 1
    except errors.JobyardError as exc:
        body = {"error": exc.message, "code": exc.code, "status": exc.status}
        if exc.details:
            body["details"] = exc.details
        sys.stderr.write(json.dumps(body) + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _worker(parser: argparse.ArgumentParser, args: argparse.Namespace, client: Client) -> int:
    from .worker import Worker

    try:
        function = load_function(args.function)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    worker = Worker(
        function,
        client=client,
        concurrency=args.concurrency,
        names=args.names,
        wait_seconds=args.wait_seconds,
        grace_period=args.grace_period,
        keepalive=not args.no_keepalive,
        keepalive_interval=args.keepalive_interval,
    )
    log.info(
        "worker for space %s at %s, concurrency %d", client.space, client.base_url, args.concurrency
    )
    worker.run()
    log.info("worker stopped: %s", worker.stats)
    return 0


def _push(parser: argparse.ArgumentParser, args: argparse.Namespace, client: Client) -> int:
    import signal
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from .push import DEFAULT_SIGNATURE_HEADER, PushApp
    from .worker import Worker

    args.secret = args.secret or os.environ.get("JOBYARD_PUSH_SECRET")
    if not args.secret:
        raise UsageError("no push secret: pass --secret or set JOBYARD_PUSH_SECRET")
    try:
        function = load_function(args.function)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    host, _, port = args.listen.rpartition(":")
    worker = Worker(function, client=client, concurrency=args.concurrency)
    app = PushApp(
        worker,
        secret=args.secret,
        signature_header=args.signature_header or DEFAULT_SIGNATURE_HEADER,
    )

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:
            log.debug(format, *a)

    httpd = make_server(host or "0.0.0.0", int(port), app, Server, QuietHandler)  # noqa: S104
    log.info("push receiver on %s", args.listen)

    def on_signal(signum: int, frame: Any) -> None:
        worker.stop()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        # Running jobs finish within the grace period, or go back to the queue.
        worker._shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
