"""Command line: ``python -m jobyard <command>``.

    python -m jobyard worker --url URL --space SPACE --token TOKEN --concurrency 8 app.tasks:handle
    python -m jobyard enqueue --name email.send --payload '{"to": "a@example.com"}'
    python -m jobyard get|wait|kill|retry JOB_ID
    python -m jobyard push --listen 0.0.0.0:8080 --secret SECRET app.tasks:handle

``--url``, ``--space`` and ``--token`` default to JOBYARD_URL, JOBYARD_SPACE and JOBYARD_TOKEN.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import errors
from .client import Client

log = logging.getLogger("jobyard")


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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("JOBYARD_URL"), help="server base URL")
    common.add_argument("--token", default=os.environ.get("JOBYARD_TOKEN"), help="API key")
    common.add_argument("--space", default=os.environ.get("JOBYARD_SPACE"), help="space id")
    common.add_argument("--log-level", default=os.environ.get("JOBYARD_LOG_LEVEL", "INFO"))

    parser = argparse.ArgumentParser(
        prog="python -m jobyard",
        description="Jobyard client: run workers and push receivers, create and follow jobs.",
        epilog="--url, --token and --space default to JOBYARD_URL, JOBYARD_TOKEN, JOBYARD_SPACE.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", parents=[common], help="run a worker")
    worker.add_argument("function", help="module:function called with each job")
    worker.add_argument("--concurrency", "-c", type=int, default=1)
    worker.add_argument("--names", type=_names, help="only these job names (comma-separated)")
    worker.add_argument("--wait-seconds", type=float, default=10.0, help="long poll (0-20)")
    worker.add_argument(
        "--grace-period", type=float, default=30.0, help="seconds running jobs get at shutdown"
    )
    worker.add_argument("--keepalive-interval", type=float, default=None)
    worker.add_argument("--no-keepalive", action="store_true")

    enqueue = sub.add_parser("enqueue", parents=[common], help="create a job")
    enqueue.add_argument("--name", required=True)
    enqueue.add_argument("--payload", type=_json_arg, default=None, help="JSON")
    enqueue.add_argument("--max-retries", type=int)
    enqueue.add_argument("--timeout-seconds", type=int)
    enqueue.add_argument("--scheduled-for", help="ISO 8601 with a timezone")
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--idempotency-key")
    enqueue.add_argument("--callback-url")
    enqueue.add_argument("--backoff", type=_json_arg, help="JSON backoff policy")
    enqueue.add_argument("--wait", action="store_true", help="wait and print the final job")
    enqueue.add_argument("--timeout", type=float, default=None, help="with --wait")

    for verb, text in (("get", "show a job"), ("kill", "kill a job"), ("retry", "retry a job")):
        cmd = sub.add_parser(verb, parents=[common], help=text)
        cmd.add_argument("job_id")
        if verb == "kill":
            cmd.add_argument("--reason")
    wait = sub.add_parser("wait", parents=[common], help="wait for a job to finish")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, default=None)

    push = sub.add_parser("push", parents=[common], help="serve a push-wake receiver")
    push.add_argument("function", help="module:function called with each job")
    push.add_argument("--listen", default="0.0.0.0:8080", help="host:port")
    push.add_argument("--secret", default=os.environ.get("JOBYARD_PUSH_SECRET"))
    push.add_argument("--signature-header", default=None)
    push.add_argument("--concurrency", "-c", type=int, default=4)
    return parser


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        client = Client(args.url, args.token, args.space)
    except ValueError as exc:
        parser.error(str(exc))

    try:
        if args.command == "worker":
            return _worker(parser, args, client)
        if args.command == "push":
            return _push(parser, args, client)
        if args.command == "enqueue":
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
            _print(client.wait(job["id"], args.timeout) if args.wait else job)
        elif args.command == "get":
            _print(client.get(args.job_id))
        elif args.command == "wait":
            _print(client.wait(args.job_id, args.timeout))
        elif args.command == "kill":
            _print(client.kill(args.job_id, args.reason))
        elif args.command == "retry":
            _print(client.retry(args.job_id))
    except ValueError as exc:
        parser.error(str(exc))
    except errors.JobyardError as exc:
        body = {"error": exc.message, "code": exc.code, "status": exc.status}
        if exc.details:
            body["details"] = exc.details
        sys.stderr.write(json.dumps(body) + "\n")
        return 1
    return 0


def _worker(parser: argparse.ArgumentParser, args: argparse.Namespace, client: Client) -> int:
    from .worker import Worker

    try:
        function = load_function(args.function)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if not client.space:
        parser.error("no space: pass --space or set JOBYARD_SPACE")
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

    if not args.secret:
        parser.error("no push secret: pass --secret or set JOBYARD_PUSH_SECRET")
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
