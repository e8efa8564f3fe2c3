from __future__ import annotations

import socket
import threading

import pytest

from notifications import http
from tests import threads


class TrickleServer:
    """Accepts one connection and answers one byte at a time, forever (until closed)."""

    def __init__(self, send_headers: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.send_headers = send_headers
        self.sent = 0
        self._thread = threads.spawn(self._run, close_db=False)

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" if self.send_headers else b""
        try:
            while not self.stop.is_set():
                conn.sendall(data[:1] or b"x" if self.send_headers else b"H")
                self.sent += 1
                data = data[1:]
                self.stop.wait(0.1)
        except OSError:
            pass  # the client hung up: what the test wants
        conn.close()

    def close(self) -> None:
        """Stop; fails the test if the server thread raised (it then trickled nothing)."""
        self.stop.set()
        self.sock.close()
        self._thread.result(5)


def test_it_sends_a_fixed_user_agent_and_json(httpserver):
    httpserver.expect_request("/x", query_string="a=1").respond_with_data("fine", status=201)

    response = http.post(
        httpserver.url_for("/x?a=1"),
        b'{"k": 1}',
        headers={"User-Agent": "spoofed", "X-Custom": "yes"},
    )

    assert response.status == 201 and response.ok and response.body == b"fine"
    (request, _) = httpserver.log[0]
    assert request.headers["User-Agent"] == "Jobyard-Notifications/1.0"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Custom"] == "yes"
    assert request.get_data() == b'{"k": 1}'


def test_it_caps_the_response_body(httpserver, settings):
    settings.NOTIFICATIONS_MAX_RESPONSE_BYTES = 1000
    httpserver.expect_request("/big").respond_with_data(b"y" * 50_000)

    response = http.post(httpserver.url_for("/big"), b"{}")

    assert len(response.body) == 1000 and response.truncated


@pytest.mark.parametrize("send_headers", [True, False])
def test_a_trickling_receiver_is_cut_off_at_the_total_deadline(send_headers):
    # Each byte arrives well within the read timeout; only the total deadline can stop it.
    server = TrickleServer(send_headers)
    try:
        with pytest.raises(http.TimedOut) as caught:
            http.post(
                f"http://127.0.0.1:{server.port}/",
                b"{}",
                read_timeout=5,
                total_timeout=1,
            )
    finally:
        server.close()
    assert "1 s" in caught.value.message
    assert server.sent >= 5  # it did trickle, a byte each 0.1 s, until the client gave up


def test_a_silent_receiver_hits_the_read_timeout():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        with pytest.raises(http.TimedOut):
            http.post(
                f"http://127.0.0.1:{sock.getsockname()[1]}/",
                b"{}",
                read_timeout=0.3,
                total_timeout=5,
            )
    finally:
        sock.close()


def test_a_refused_connection_is_a_transient_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    with pytest.raises(http.ConnectFailed) as caught:
        http.post(f"http://127.0.0.1:{port}/secret/path", b"{}")

    assert not caught.value.permanent
    assert "secret" not in caught.value.message


def test_tls_errors_are_typed(httpserver):
    httpserver.expect_request("/").respond_with_data("plain http")
    with pytest.raises(http.TLSFailed):
        http.post(f"https://127.0.0.1:{httpserver.port}/", b"{}")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "javascript:alert(1)", "http://", "http://exa mple.com/", ""]
)
def test_only_http_and_https_urls(url):
    with pytest.raises(http.InvalidTarget):
        http.post(url, b"{}")


def test_an_unknown_name_is_a_resolve_error(monkeypatch):
    def fail(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(http, "resolve", fail)
    with pytest.raises(http.ResolveFailed):
        http.post("http://no-such-host.example.test/", b"{}")


def test_no_deadline_thread_outlives_a_request(httpserver):
    httpserver.expect_request("/").respond_with_data("ok")
    before = threading.active_count()
    for _ in range(5):
        http.post(httpserver.url_for("/"), b"{}", total_timeout=30)
    assert threading.active_count() == before
