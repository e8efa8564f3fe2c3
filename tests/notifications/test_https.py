"""HTTPS through the guarded connection: the socket goes to the checked IP, while SNI and the
certificate check still use the host name."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
from pathlib import Path
from unittest import mock

import pytest

from notifications import http as client
from tests import threads

NAME = "hooks.example.test"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    workdir: Path = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={NAME}",
            "-addext",
            f"subjectAltName=DNS:{NAME}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"host": self.headers["Host"], "sni": self.connection.server_hostname})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember_sni(sock, server_name, ctx):
        sock.server_hostname = server_name

    context.sni_callback = remember_sni
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serving = threads.spawn(server.serve_forever, close_db=False)
    yield server.server_address[1], cert, seen
    server.shutdown()
    serving.result(5)


def to_loopback(host, port):
    return [(socket.AF_INET, ("127.0.0.1", port))]


def test_https_verifies_the_name_while_connecting_to_the_checked_address(tls_server):
    port, cert, seen = tls_server
    with (
        mock.patch.object(client, "resolve", side_effect=to_loopback),
        mock.patch.object(client.certifi, "where", return_value=str(cert)),
    ):
        response = client.post(f"https://{NAME}:{port}/hook", b"{}")

    assert response.status == 200 and response.address == "127.0.0.1"
    assert seen[-1] == {"host": f"{NAME}:{port}", "sni": NAME}


def test_https_refuses_a_certificate_for_another_name(tls_server):
    port, cert, _ = tls_server
    with (
        mock.patch.object(client, "resolve", side_effect=to_loopback),
        mock.patch.object(client.certifi, "where", return_value=str(cert)),
        pytest.raises(client.TLSFailed),
    ):
        client.post(f"https://other.example.test:{port}/hook", b"{}")


def test_https_refuses_an_untrusted_certificate(tls_server):
    port, _, _ = tls_server
    with (
        mock.patch.object(client, "resolve", side_effect=to_loopback),
        pytest.raises(client.TLSFailed),
    ):
        client.post(f"https://{NAME}:{port}/hook", b"{}")
