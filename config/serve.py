"""`python -m config.serve`: daphne with a graceful stop on SIGTERM.

Plain daphne stops the reactor on SIGTERM and cancels every application instance at once, so
a request in flight (a long poll, a job completion) is cut off mid-way. This wrapper takes the
same command line as `daphne` and changes only what happens on SIGTERM or SIGINT:

1. /readyz starts answering 503 ("draining"), so load balancers stop routing here; requests
   keep being served for WEB_SHUTDOWN_DELAY_SECONDS (0 by default; set it to the time your load
   balancer needs to notice, instead of a Kubernetes preStop sleep).
2. The listening sockets close, WebSocket streams are closed with 1001 "going away" (clients
   reconnect to another process and replay from their last seq), and HTTP requests in flight
   get up to WEB_SHUTDOWN_GRACE_SECONDS to finish.
3. The server stops. A second signal stops it at once.

It also leaves out daphne's access log (see GracefulServer.__init__).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

log = logging.getLogger("jobyard.serve")

# While stopping, how often the server looks whether the requests in flight are done.
CHECK_INTERVAL = 0.1


class GracefulServer(Server):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No daphne access log: RequestLogMiddleware writes one structured line per request,
        # while daphne's line is unstructured and would copy query strings (?token=...).
        kwargs["action_logger"] = None
        super().__init__(*args, **kwargs)

    def run(self) -> None:
        self._ports: list[Any] = []
        self._stopping = False
        self._grace_deadline = 0.0
        # Twisted's own handlers would stop the reactor at once: install these instead, once
        # the reactor runs (Twisted would otherwise replace them when it starts).
        self.signal_handlers = False
        reactor.callWhenRunning(self._install_signal_handlers)
        super().run()

    def listen_success(self, port: Any) -> None:
        self._ports.append(port)
        super().listen_success(port)

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # A signal handler may run between any two bytecodes: hand over to the reactor.
        reactor.callFromThread(self.begin_stop, signum)

    def begin_stop(self, signum: int = signal.SIGTERM) -> None:
        from django.conf import settings

        from config import health

        if self._stopping:
            log.warning("second stop signal: stopping now")
            self.stop()
            return
        self._stopping = True
        health.set_draining()
        delay = float(getattr(settings, "WEB_SHUTDOWN_DELAY_SECONDS", 0))
        grace = float(getattr(settings, "WEB_SHUTDOWN_GRACE_SECONDS", 25))
        log.info(
            "stopping: serving for %.1fs more, then up to %.1fs for requests in flight",
            delay,
            grace,
            extra={"signal": signal.Signals(signum).name, "in_flight": self.requests_in_flight()},
        )
        self._grace_deadline = time.monotonic() + delay + grace
        reactor.callLater(delay, self._close_listeners)

    def _close_listeners(self) -> None:
        for port in self._ports:
            port.stopListening()
        for protocol in list(self.connections):
            if isinstance(protocol, WebSocketProtocol):
                try:
                    protocol.serverClose(code=1001)  # going away: reconnect elsewhere
                except Exception:  # the socket may be half-closed already
                    log.debug("could not close a stream", exc_info=True)
        self._wait_for_requests()

    def _wait_for_requests(self) -> None:
        busy = self.requests_in_flight()
        if busy == 0:
            log.info("stopped: no request in flight")
            self.stop()
        elif time.monotonic() >= self._grace_deadline:
            log.warning("stopping with %d request(s) still in flight", busy)
            self.stop()
        else:
            reactor.callLater(CHECK_INTERVAL, self._wait_for_requests)

    def requests_in_flight(self) -> int:
        """HTTP requests whose response is not complete (streams don't count)."""
        return sum(
            1
            for protocol, details in list(self.connections.items())
            if isinstance(protocol, WebRequest) and "disconnected" not in details
        )


class GracefulCommandLineInterface(CommandLineInterface):
    server_class = GracefulServer


def main(argv: list[str] | None = None) -> None:
    try:
        GracefulCommandLineInterface().run(sys.argv[1:] if argv is None else argv)
    finally:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Drops this process's live gauges (requests in progress, open streams) from the
            # host's totals.
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


if __name__ == "__main__":
    main()
