"""Health endpoints for load balancers and orchestrators.

`/healthz` answers as long as the process can serve a request (liveness: restart me if not).
`/readyz` also checks what a request needs: the database, and Redis when REDIS_URL is set
(readiness: send me traffic only if this passes). Both are unauthenticated and cheap, and they are
plain Django views, so the API's per-key throttling (a DRF throttle) never applies to them.
ProbeMiddleware (config/middleware.py) serves them before host validation, because probes
usually address the pod by IP.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)

# Seconds a readiness check may take before it counts as failed.
DATABASE_TIMEOUT_MS = 1000
REDIS_TIMEOUT_SECONDS = 1.0

# One client (and its connection pool) per URL: a probe every few seconds must not open a new
# TCP connection each time. Keyed by URL so tests overriding REDIS_URL get their own client.
_redis_clients: dict[str, Any] = {}
_redis_lock = threading.Lock()
_CREDENTIALS = re.compile(r"//[^/@\s]*@")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


_draining = threading.Event()


def set_draining() -> None:
    """From now on /readyz answers 503: the process is stopping (config/serve.py)."""
    _draining.set()


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    if _draining.is_set():
        return JsonResponse({"status": "draining", "failing": ["draining"]}, status=503)
    checks: dict[str, str] = {"database": _check_database()}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis(settings.REDIS_URL)
    failing = sorted(name for name, outcome in checks.items() if outcome != "ok")
    if failing:
        return JsonResponse(
            {"status": "unavailable", "failing": failing, "checks": checks}, status=503
        )
    return JsonResponse({"status": "ok", "checks": checks})


def _check_database() -> str:
    try:
        if connection.vendor == "postgresql":
            # A statement timeout local to this transaction: a wedged server fails the probe
            # instead of hanging it (connecting is bounded by connect_timeout in settings).
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {DATABASE_TIMEOUT_MS}")
                cursor.execute("SELECT 1")
                cursor.fetchone()
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
    except Exception as exc:
        # The message can name hosts and users: it goes to the log, the response says only
        # which part failed.
        # A broken connection is closed by Django's end-of-request handler
        # (close_old_connections), so the next request opens a fresh one.
        log.warning("readiness: database check failed", extra={"error": _describe(exc)})
        return "error: " + type(exc).__name__
    return "ok"


def _check_redis(url: str) -> str:
    try:
        _redis_client(url).ping()
    except Exception as exc:
        log.warning("readiness: redis check failed", extra={"error": _describe(exc)})
        return "error: " + type(exc).__name__
    return "ok"


def _redis_client(url: str):
    client = _redis_clients.get(url)
    if client is None:
        import redis

        with _redis_lock:
            client = _redis_clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                    retry_on_timeout=False,
                )
                _redis_clients[url] = client
    return client


def _describe(exc: BaseException) -> str:
    # Redis URLs can carry a password: never echo the URL, only the exception and its message
    # with any user:password@ part removed.
    text = f"{type(exc).__name__}: {exc}"
    return _CREDENTIALS.sub("//***@", text)[:300]
