"""`python -m config.serve -b HOST -p PORT config.asgi:application`: the web process.

uvicorn (httptools, uvloop) serving HTTP and WebSockets on one port from WEB_CONCURRENCY
processes (default: one per core). With more than one, a parent process binds the socket, starts
the children and replaces any child that dies (uvicorn's supervisor); SIGTERM or SIGINT to the
parent drains every child. With the in-memory channel layer (no REDIS_URL) stream events cannot
cross processes, so it serves from one process whatever WEB_CONCURRENCY says, with a warning.

What happens on SIGTERM or SIGINT in each serving process:

1. /readyz starts answering 503 ("draining"), so load balancers stop routing here; requests
   keep being served for WEB_SHUTDOWN_DELAY_SECONDS (0 by default; set it to the time your load
   balancer needs to notice, instead of a Kubernetes preStop sleep).
2. The listening socket closes, WebSocket streams are closed with 1001 "going away" (clients
   reconnect to another process and replay from their last seq; uvicorn alone would send 1012),
   and HTTP requests in flight get up to WEB_SHUTDOWN_GRACE_SECONDS to finish.
3. The process exits with status 0. A second signal stops it at once.

No access log: RequestLogMiddleware writes one structured line per request, while uvicorn's
lines are unstructured and would copy query strings (?token=... on WebSocket URLs), so uvicorn's
own loggers only pass warnings and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess as uvicorn_multiprocess

log = logging.getLogger("jobyard.serve")

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


def web_concurrency() -> int:
    """WEB_CONCURRENCY serving processes; default one per core."""
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    return max(1, int(raw)) if raw else max(1, os.cpu_count() or 1)


class GracefulServer(uvicorn.Server):
    """uvicorn's server with the drain delay, 1001 for streams and exit status 0 on a stop."""

    supervised = False  # a child of the supervisor: the parent relays Ctrl-C as SIGTERM

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop_at: float | None = None
        # Log lines of the signal handler, written later by the loop: a handler that logs can
        # interrupt a log write of the same thread, and the stream then drops its line
        # ("reentrant call"). (level, message, args, extra)
        self._signal_log: list[tuple[int, str, tuple, dict]] = []

    def _write_signal_log(self) -> None:
        while self._signal_log:
            level, message, args, extra = self._signal_log.pop(0)
            log.log(level, message, *args, extra=extra)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler in the loop's thread, between two bytecodes: only flags.
        if self.supervised and sig == signal.SIGINT:
            return  # the terminal's Ctrl-C reaches the whole group; the parent sends SIGTERM
        if self._stop_at is not None:
            self._signal_log.append((logging.WARNING, "second stop signal: stopping now", (), {}))
            self.should_exit = True
            self.force_exit = True
            return
        from django.conf import settings

        from config import health

        health.set_draining()
        delay = float(getattr(settings, "WEB_SHUTDOWN_DELAY_SECONDS", 0))
        self.config.timeout_graceful_shutdown = float(
            getattr(settings, "WEB_SHUTDOWN_GRACE_SECONDS", 25)
        )
        self._signal_log.append(
            (
                logging.INFO,
                "stopping: serving for %.1fs more, then up to %.1fs for requests in flight",
                (delay, self.config.timeout_graceful_shutdown),
                {"signal": signal.Signals(sig).name, "in_flight": self.requests_in_flight()},
            )
        )
        self._stop_at = time.monotonic() + delay

    async def on_tick(self, counter: int) -> bool:
        self._write_signal_log()
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._write_signal_log()
        for connection in list(self.server_state.connections):
            _close_stream(connection, 1001)  # going away: reconnect elsewhere
        await super().shutdown(sockets)
        busy = self.requests_in_flight()
        if busy:
            log.warning("stopping with %d request(s) still in flight", busy)
        else:
            log.info("stopped: no request in flight")

    def requests_in_flight(self) -> int:
        """HTTP requests whose response is not complete (streams don't count)."""
        return sum(
            1
            for connection in list(self.server_state.connections)
            if (cycle := getattr(connection, "cycle", None)) is not None
            and not cycle.response_complete
        )

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets)
        finally:
            self._captured_signals.clear()  # uvicorn would raise them again: exit 0 instead
            _forget_process_metrics(os.getpid())
        if self.force_exit:
            # Request threads still running (a long poll) would hold the exit: leave now.
            logging.shutdown()
            os._exit(0)


def _close_stream(connection: Any, code: int) -> None:
    """Close an open WebSocket (uvicorn's websockets-sansio protocol) with `code`."""
    ws = getattr(connection, "conn", None)
    if not getattr(connection, "handshake_complete", False) or connection.close_sent:
        return
    try:
        connection.queue.put_nowait({"type": "websocket.disconnect", "code": code})
        ws.send_close(code)
        connection.close_sent = True
        connection.transport.write(b"".join(ws.data_to_send()))
    except Exception:  # the socket may be half-closed already
        log.debug("could not close a stream", exc_info=True)


class GracefulProcess(uvicorn_multiprocess.Process):
    """A supervised child running GracefulServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(config=self.config)
            self._server.supervised = True
        return self._server


class Supervisor(uvicorn_multiprocess.Multiprocess):
    """uvicorn's supervisor (restarts dead children); a second stop signal reaches the children."""

    def run(self) -> None:
        log.info("serving from %d processes", self.processes_num, extra={"parent_pid": os.getpid()})
        self.init_processes()
        while not self.should_exit.wait(0.5):
            self.handle_signals()
            self._forget_dead()
            self.keep_subprocess_alive()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._relay)
        self.terminate_all()
        self.join_all()
        self._forget_dead()

    def _relay(self, signum: int, frame: FrameType | None) -> None:
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _forget_dead(self) -> None:
        for process in self.processes:
            if process.pid is not None and not process.process.is_alive():
                if not self.should_exit.is_set():
                    log.warning(
                        "web process %d exited (%s); starting another",
                        process.pid,
                        process.exitcode,
                        extra={"pid": process.pid, "exit_code": process.exitcode},
                    )
                _forget_process_metrics(process.pid)


def _forget_process_metrics(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Drops that process's live gauges (requests in progress, open streams) from the host's
        # totals.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m config.serve", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-b", "--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="take the client address and scheme from X-Forwarded-For/-Proto "
        "(sent by a proxy in FORWARDED_ALLOW_IPS, default 127.0.0.1)",
    )
    parser.add_argument("--root-path", default="", help="the path prefix the app is mounted at")
    parser.add_argument("application", help="the ASGI application, e.g. config.asgi:application")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()  # logging and settings; the application itself loads in the children
    from django.conf import settings

    # Propagate to the root handler Django configured, and pass only warnings: uvicorn's INFO
    # lines name WebSocket URLs, query strings (?token=...) included.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)

    workers = web_concurrency()
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if workers > 1 and backend == IN_MEMORY_LAYER:
        log.warning(
            "WEB_CONCURRENCY=%d but the channel layer is in-memory, which does not cross "
            "processes: serving from one process (set REDIS_URL to use more)",
            workers,
        )
        workers = 1

    config = uvicorn.Config(
        args.application,
        host=args.bind,
        port=args.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Client messages are small control messages (4 KiB, jobs/consumers.py closes with 4413
        # past that); one over 64 KiB is refused by the protocol layer (1009) before it is
        # buffered whole, instead of after uvicorn's default 16 MiB.
        ws_max_size=64 * 1024,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS") if args.proxy_headers else None,
        root_path=args.root_path,
        server_header=False,
        timeout_graceful_shutdown=float(getattr(settings, "WEB_SHUTDOWN_GRACE_SECONDS", 25)),
    )
    if workers == 1:
        log.info("serving from 1 process", extra={"pid": os.getpid()})
        GracefulServer(config).run()
        return
    sock = config.bind_socket()
    # Every child process (and each one replacing a dead child) runs GracefulProcess.
    uvicorn_multiprocess.Process = GracefulProcess  # type: ignore[misc]
    try:
        Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()


if __name__ == "__main__":
    main()
