"""The one outbound HTTP client: every Slack message, push and callback goes through post().

Safety rules, all enforced here so no sender can forget one:
- http and https only, no user info, no redirects (a 3xx is returned as a failed response);
- the target name is resolved here and every address is checked against lib.outbound's policy
  (loopback, private, CGNAT, link-local, multicast, unspecified, metadata, and IPv6 forms that
  wrap an IPv4 address); the socket then connects to the checked address itself, so a DNS
  answer that changes between check and connect cannot slip through, while the Host header
  and TLS SNI/certificate check still use the name;
- connect and read timeouts plus a total deadline (a receiver that trickles one byte a second
  is cut off), a response body cap, a fixed User-Agent, no proxies from the environment;
- typed errors with messages that never contain the URL (it may carry a secret).

settings.OUTBOUND_ALLOW_PRIVATE lifts the private-address refusal (tests, local development);
metadata addresses stay refused.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import certifi
from django.conf import settings
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Timeout as U3Timeout

from lib.outbound import blocked_reason, validate_outbound_url

USER_AGENT = "Jobyard-Notifications/1.0"
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024


class OutboundError(Exception):
    """The request produced no HTTP response. `permanent` errors are not worth retrying."""

    permanent = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTarget(OutboundError):
    permanent = True


class BlockedTarget(OutboundError):
    permanent = True


class ResolveFailed(OutboundError):
    pass


class ConnectFailed(OutboundError):
    pass


class TimedOut(OutboundError):
    pass


class TLSFailed(OutboundError):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    truncated: bool
    duration_ms: int
    address: str = ""  # the IP actually connected to

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self, limit: int = 500) -> str:
        return self.body[:limit].decode("utf-8", "replace")


def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) pairs for HOST; tests patch this to simulate DNS answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


@dataclass
class _Guard:
    """Per-request state shared with the connections: the policy and the total deadline."""

    allow_private: bool
    total_timeout: float
    deadline: float = 0.0
    expired: bool = False
    address: str = ""
    _socks: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remaining(self) -> float:
        return max(0.001, self.deadline - time.monotonic())

    def connect(self, host: str, port: int, timeout: float | None, options: Any) -> socket.socket:
        host = host.strip("[]")
        try:
            candidates = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise ResolveFailed(f"could not resolve the host ({_os_reason(exc)})") from exc
        if not candidates:
            raise ResolveFailed("the host has no address")
        last_error: OutboundError | None = None
        refused = 0
        for family, sockaddr in candidates:
            # The check runs on the exact address the socket is about to connect to.
            if blocked_reason(str(sockaddr[0]), allow_private=self.allow_private):
                refused += 1
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for opt in options or ():
                    sock.setsockopt(*opt)
                self._track(sock)
                sock.settimeout(min(timeout or self.total_timeout, self.remaining()))
                sock.connect(sockaddr)
            except TimeoutError as exc:
                sock.close()
                last_error = TimedOut("connect timed out")
                if self.expired:
                    raise last_error from exc
                continue
            except OSError as exc:
                sock.close()
                last_error = ConnectFailed(f"could not connect ({_os_reason(exc)})")
                continue
            self.address = str(sockaddr[0])
            return sock
        if last_error is None and refused:
            raise BlockedTarget(
                "refused: the host resolves to a private, loopback, reserved or metadata address"
            )
        raise last_error or ConnectFailed("could not connect")

    def _track(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor lets the deadline timer shut the connection down even
        # after TLS has wrapped (and taken over) the original socket object.
        with self._lock:
            self._socks.append(sock.dup())

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for dup in self._socks:
                with contextlib.suppress(OSError):
                    dup.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            for dup in self._socks:
                with contextlib.suppress(OSError):
                    dup.close()
            self._socks.clear()


class _GuardedConnection(HTTPConnection):
    def __init__(self, *args: Any, jobyard_guard: _Guard, **kwargs: Any) -> None:
        self._jobyard_guard = jobyard_guard
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return self._jobyard_guard.connect(self.host, self.port, self.timeout, self.socket_options)


class _GuardedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, jobyard_guard: _Guard, **kwargs: Any) -> None:
        self._jobyard_guard = jobyard_guard
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return self._jobyard_guard.connect(self.host, self.port, self.timeout, self.socket_options)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "name not found"
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        return exc.strerror or errno.errorcode[exc.errno]
    return type(exc).__name__


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def post(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    total_timeout: float = 15.0,
    max_response_bytes: int | None = None,
) -> Response:
    """POST BODY (JSON) to URL under the safety rules above; a response of any status is
    returned, anything else raises an OutboundError subclass."""
    allow_private = bool(_setting("OUTBOUND_ALLOW_PRIVATE", False))
    problems = validate_outbound_url(url, allow_private=allow_private)
    if problems:
        raise InvalidTarget(f"invalid target URL: {problems[0]}")
    if max_response_bytes is None:
        max_response_bytes = int(
            _setting("NOTIFICATIONS_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    # Caller headers first, then the ones that must not be overridden.
    sent: dict[str, str] = {
        k: v
        for k, v in (headers or {}).items()
        if k.lower() not in {"user-agent", "content-type", "accept-encoding"}
    }
    sent["User-Agent"] = USER_AGENT
    sent["Content-Type"] = "application/json"
    sent["Accept-Encoding"] = "identity"

    guard = _Guard(allow_private=allow_private, total_timeout=total_timeout)
    pool_kwargs: dict[str, Any] = {
        "maxsize": 1,
        "retries": False,
        "jobyard_guard": guard,
    }
    if scheme == "https":
        pool: HTTPConnectionPool = _HTTPSPool(
            parts.hostname,
            port,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            **pool_kwargs,
        )
    else:
        pool = _Pool(parts.hostname, port, **pool_kwargs)

    started = time.monotonic()
    guard.deadline = started + total_timeout
    timer = threading.Timer(total_timeout, guard.expire)
    timer.daemon = True
    timer.start()
    try:
        try:
            resp = pool.urlopen(
                "POST",
                path,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                timeout=U3Timeout(connect=connect_timeout, read=read_timeout),
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
            )
            chunks: list[bytes] = []
            size = 0
            truncated = False
            try:
                while size <= max_response_bytes:
                    chunk = resp.read(min(16384, max_response_bytes + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if size > max_response_bytes:
                    truncated = True
            finally:
                resp.release_conn()
        except OutboundError:
            raise
        except Exception as exc:
            raise _translate(exc, guard) from exc
        if guard.expired:
            raise TimedOut(f"no complete response within {total_timeout:g} s")
        body_read = b"".join(chunks)[:max_response_bytes]
        return Response(
            status=resp.status,
            headers={k.lower(): v for k, v in resp.headers.items()},
            body=body_read,
            truncated=truncated,
            duration_ms=int((time.monotonic() - started) * 1000),
            address=guard.address,
        )
    finally:
        timer.cancel()
        timer.join()  # returns at once after cancel(); no timer thread outlives the call
        pool.close()
        guard.close()


def _translate(exc: Exception, guard: _Guard) -> OutboundError:
    """An urllib3/socket error as a typed error whose message carries no URL."""
    if guard.expired:
        return TimedOut(f"no complete response within {guard.total_timeout:g} s")
    if isinstance(exc, u3.NewConnectionError):
        return ConnectFailed("could not connect")
    if isinstance(exc, u3.ConnectTimeoutError):
        return TimedOut("connect timed out")
    if isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return TimedOut("read timed out")
    if isinstance(exc, u3.SSLError | ssl.SSLError | ssl.CertificateError):
        return TLSFailed("TLS handshake or certificate check failed")
    if isinstance(exc, u3.ProtocolError):
        cause = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(cause, TimeoutError):
            return TimedOut("read timed out")
        if isinstance(cause, OSError):
            return ConnectFailed(f"connection failed ({_os_reason(cause)})")
        return ConnectFailed("connection closed before a complete response")
    if isinstance(exc, u3.HTTPError | OSError):
        return ConnectFailed(f"request failed ({type(exc).__name__})")
    return OutboundError(f"request failed ({type(exc).__name__})")
