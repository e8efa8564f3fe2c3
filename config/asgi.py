"""ASGI entry point: HTTP through Django's WSGI handler on a thread pool, WebSockets through Channels.

All API views and middleware are synchronous. Django's own ASGI handler would run every request
through sync_to_async with a fresh thread-sensitive context, i.e. a new executor thread per
request plus several sync/async hops; that cost more than the view itself for small calls
(docs/performance.md, "Serving"). Here HTTP requests go to Django's WSGI handler (the whole
middleware chain sync, no hops) on a persistent pool of threads that are created lazily and
reused. The pool is large (WEB_HTTP_THREADS, 300 by default) because a long poll sleeps in its
request thread for up to 20 s without holding a database connection: long polls must not starve
other calls. Requests beyond the pool size wait for a free thread.

Each request thread knows the server's event loop the way sync_to_async threads do
(SyncToAsync.threadlocal.main_event_loop), so async_to_sync from a view, such as the stream
fan-out in jobs/streams.py, runs on the loop of the WebSocket consumers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# Django must be set up before anything imports models (this runs django.setup()).
django_wsgi_app = get_wsgi_application()

from asgiref.sync import SyncToAsync  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from jobs.routing import websocket_urlpatterns  # noqa: E402
from jobs.stream_auth import StreamAuthMiddleware  # noqa: E402

DEFAULT_HTTP_THREADS = 300


def http_threads() -> int:
    return max(1, int(os.environ.get("WEB_HTTP_THREADS", "") or DEFAULT_HTTP_THREADS))


class WSGIOnThreads:
    """An ASGI HTTP application that runs a WSGI application on a persistent thread pool.

    The request body is read on the event loop (spooled to disk past
    FILE_UPLOAD_MAX_MEMORY_SIZE, like Django's ASGI handler), then the WSGI application runs on
    a pool thread. A plain response is built in the thread and sent from the loop; a streaming
    one is sent chunk by chunk from the thread.
    """

    def __init__(self, wsgi_app: Any, max_threads: int) -> None:
        self.wsgi_app = wsgi_app
        self.max_threads = max_threads
        self.executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="http")
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"WSGIOnThreads serves HTTP only, not {scope['type']!r}")
        body = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed in the finally below
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE
        )
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left before sending its whole request
                body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body.seek(0)
            loop = asyncio.get_running_loop()
            self.in_flight += 1
            try:
                result = await loop.run_in_executor(
                    self.executor, self._run, build_environ(scope, body), loop, send
                )
            finally:
                self.in_flight -= 1
        finally:
            body.close()
        if result is not None:  # not streamed from the thread: send it here
            status, headers, content = result
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

    def _run(self, environ: dict, loop: asyncio.AbstractEventLoop, send: Any):
        # What sync_to_async sets in its threads: async_to_sync then runs on the server's loop.
        local = SyncToAsync.threadlocal
        local.main_event_loop = loop
        local.main_event_loop_pid = os.getpid()
        started: list = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [
                int(status.split(" ", 1)[0]),
                [
                    (name.lower().encode("latin1"), value.encode("latin1"))
                    for name, value in headers
                ],
            ]
            return _no_write

        response = self.wsgi_app(environ, start_response)
        try:
            if not getattr(response, "streaming", False):
                content = b"".join(response)
                return started[0], started[1], content
            # Streaming: send each chunk as it comes, from this thread.
            self._send(loop, send, {"type": "http.response.start", "status": started[0],
                                    "headers": started[1]})  # fmt: skip
            for chunk in response:
                if chunk:
                    self._send(
                        loop, send, {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
            self._send(loop, send, {"type": "http.response.body", "body": b""})
            return None
        finally:
            # Fires request_finished: Django closes (returns to the pool) this thread's
            # database connections.
            close = getattr(response, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _send(loop: asyncio.AbstractEventLoop, send: Any, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(send(message), loop).result()


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the WSGI write() callable is not supported")


def build_environ(scope: dict, body: Any) -> dict:
    """The WSGI environ of an ASGI HTTP scope (PEP 3333; headers as Django's ASGI handler reads them)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode("utf8").decode("latin1"),
        "PATH_INFO": path.encode("utf8").decode("latin1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin1")
        if "_" in name:
            # As WSGI servers do: X_Forwarded_Proto would otherwise pass for X-Forwarded-Proto.
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin1")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


http_application = WSGIOnThreads(django_wsgi_app, http_threads())

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # Origin checks for browser-session sockets happen in StreamAuthMiddleware: token
        # sockets come from scripts that send no Origin at all.
        "websocket": StreamAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
