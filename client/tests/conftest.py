"""Fixtures for the client's own suite: local HTTP and WebSocket servers, no Jobyard server.

- ``httpserver`` (pytest-httpserver) answers API calls as scripted;
- ``flaky`` is a raw socket server whose answers can include a connection reset, which a
  werkzeug server cannot produce;
- ``job_stream`` serves a job's WebSocket stream (the messages a test gives it);
- ``waits`` records the waits between transport retries instead of sleeping.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import jobyard.retry
from jobyard import Client


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(jobyard.retry, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def client(httpserver, waits) -> Iterator[Client]:
    with Client(httpserver.url_for("/"), "emit_test", "space1", timeout=5) as c:
        yield c


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FlakyServer:
    """Answers each request with the next scripted answer: ``"reset"`` (read the request,
    then close with a TCP RST) or ``(status, json_body)``. Records every request read."""

    answers: list[Any]
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while self.answers:
                    request = self._read(conn)
                    if request is None:
                        break
                    self.received.append(request)
                    answer = self.answers.pop(0)
                    if answer == "reset":
                        # SO_LINGER 0: close() sends RST, the client sees a connection reset.
                        conn.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        break
                    status, body = answer
                    data = json.dumps(body).encode()
                    conn.sendall(
                        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n".encode()
                        + data
                    )

    @staticmethod
    def _read(conn: socket.socket) -> Received | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += conn.recv(65536)
        return Received(method, path, headers, body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def flaky() -> Iterator[Any]:
    servers: list[FlakyServer] = []

    def make(*answers: Any) -> FlakyServer:
        server = FlakyServer(list(answers))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@dataclass
class StreamServer:
    """A job stream: sends ``messages`` to each connection, then closes it."""

    messages: list[dict[str, Any]]
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from websockets.sync.server import serve

        def handler(ws: Any) -> None:
            self.paths.append(ws.request.path)
            for message in self.messages:
                ws.send(json.dumps(message))

        self.server = serve(handler, "127.0.0.1", 0)
        port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/api/v1/realtime/j1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def job_stream() -> Iterator[Any]:
    servers: list[StreamServer] = []

    def make(*messages: dict[str, Any]) -> StreamServer:
        server = StreamServer(list(messages))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
