"""A TCP listener on every local address (dual-stack ::) that records who connected."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests import threads


class Canary:
    def __init__(self) -> None:
        self.hits: list[tuple] = []
        self._stop = threading.Event()
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("0.0.0.0", 0))  # noqa: S104 - catching connections to any local address
        sock.listen(16)
        sock.settimeout(0.2)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threads.spawn(self._serve, close_db=False)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            self.hits.append(peer)
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        """Stop listening; fails the test if the listener died early (it was blind since)."""
        self._stop.set()
        try:
            self._thread.result(2)
        finally:
            self.sock.close()
