"""Request logging and timing, and the probe endpoints served ahead of the rest of the stack.

RequestLogMiddleware writes one log line per request (a JSON object in production, a readable
line on the embedded default) with the method, the route template, the status, the duration and
the API key's display prefix, and feeds the request-latency histograms. It never logs header
values, query strings or bodies, so a key, a push header or a payload cannot reach the logs.
It runs on every request, so it does no I/O of its own: the key prefix comes from the key DRF
already resolved (request.auth), the route from the URL resolver's match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from . import health, metrics

log = logging.getLogger("jobyard.request")

# Served by ProbeMiddleware before host validation (orchestrators probe pods by IP address,
# which ALLOWED_HOSTS rightly does not list) and before sessions and CSRF. They are not logged
# (a probe every few seconds would drown the log) but they are timed.
PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": health.healthz,
    "/readyz": health.readyz,
    "/metrics": metrics.metrics_view,
}


class RequestLogMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        started = time.perf_counter()
        metrics.HTTP_IN_PROGRESS.inc()
        try:
            response = self.get_response(request)
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
        self._finish(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        metrics.HTTP_IN_PROGRESS.inc()
        try:
            response = await self.get_response(request)
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
        self._finish(request, response, started)
        return response

    def _finish(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        seconds = time.perf_counter() - started
        try:
            self._record(request, response, seconds)
        except Exception:  # a log or metric must never turn a served request into a 500
            logging.getLogger(__name__).exception("request log failed")

    def _record(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        method = request.method or ""
        status = response.status_code
        match = getattr(request, "resolver_match", None)
        if match is not None:
            route = "/" + match.route
            url_name = match.url_name
        elif request.path_info in PROBES:
            route, url_name = request.path_info, None
        elif request.path_info.startswith(settings.STATIC_URL):
            route, url_name = settings.STATIC_URL + "*", None  # answered by WhiteNoise
        else:
            # Unmatched paths (404s) are not labelled by path: any client could otherwise
            # grow the metric's label set without bound.
            route, url_name = "(unmatched)", None
        metrics.observe_request(method, route, status, seconds, url_name)

        if request.path_info in PROBES:
            return
        level = logging.WARNING if status >= 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        duration_ms = round(seconds * 1000, 1)
        fields: dict[str, Any] = {
            "method": method,
            "path": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        if match is not None:
            if url_name:
                fields["view"] = url_name
            # Ids from the URL (job, space) let one trace a job through the log.
            for name, value in match.kwargs.items():
                if name.lower().endswith("id") and isinstance(value, str) and len(value) <= 64:
                    fields[_snake(name)] = value
        # DRF sets request.auth on the underlying request once a key authenticated; only its
        # display prefix (stored in clear, shown in the dashboard) is logged, never the key.
        key = getattr(request, "auth", None)
        prefix = getattr(key, "prefix", None)
        if isinstance(prefix, str):
            fields["key_prefix"] = prefix
            descriptor = getattr(type(key), "space", None)
            # Only when already loaded with the key: logging must not cost a query.
            if descriptor is not None and descriptor.is_cached(key):
                fields["space"] = key.space.public_id
        # The message names the route template, not the raw path, so nothing a client puts
        # in a URL (or a query string) is copied into the log line's text.
        log.log(level, "%s %s %s %.1fms", method, route, status, duration_ms, extra=fields)


class ProbeMiddleware:
    """Answers /healthz, /readyz and /metrics directly (see PROBES)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        view = PROBES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            # The checks use the ORM: run them in the thread Django uses for sync code.
            return await sync_to_async(view, thread_sensitive=True)(request)
        return await self.get_response(request)


def _snake(name: str) -> str:
    """jobId -> job_id; job_id stays."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
