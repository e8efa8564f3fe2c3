"""Request logging and timing, and the probe endpoints served ahead of the rest of the stack.

RequestLogMiddleware writes one log line per request (a JSON object in production, a readable
line on the embedded default) with the method, the route template, the status, the duration and
the API key's display prefix, and feeds the request-latency histograms. It never logs header
values, query strings or bodies, so a key, a push header or a payload cannot reach the logs.
It runs on every request, so it does no I/O of its own: the key prefix comes from the key DRF
already resolved (request.auth), the route from the URL resolver's match.

A refusal (4xx) is that one line and nothing else: INFO (WARNING for what Django's security
checks refused, such as a foreign Host header), with the answer's error `code`, never a
traceback. Django's own second record of it is dropped by config.logging.RefusalFilter, which
leaves its reason here. A 5xx line is WARNING, and Django logs the traceback on django.request.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from . import health, metrics
from .logging import REFUSAL_ATTRIBUTE

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
        code, security = None, False
        if status >= 400:
            code, security = error_code(request, response)
        level = logging.WARNING if status >= 500 or security else logging.INFO
        if not log.isEnabledFor(level):
            return
        duration_ms = round(seconds * 1000, 1)
        fields: dict[str, Any] = {
            "method": method,
            "path": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        if code is not None:
            fields["code"] = code
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
        if code is None:
            log.log(level, "%s %s %s %.1fms", method, route, status, duration_ms, extra=fields)
        else:
            log.log(
                level, "%s %s %s %s %.1fms", method, route, status, code, duration_ms, extra=fields
            )


# An error code as the API writes them ("stale_claim", "not_found"): anything else found in a
# body is not trusted into the log.
_CODE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# JSON error bodies are small; a larger JSON answer is not parsed for its code.
_MAX_BODY_FOR_CODE = 16 * 1024


def error_code(request: HttpRequest, response: HttpResponse) -> tuple[str, bool]:
    """The machine code of an error answer, and whether Django's security checks refused it.

    In order: the API's JSON `code` (DRF's response data, or a small JSON body such as the
    404/500 handlers'), the reason RefusalFilter left on the request (the exception Django
    turned into the answer), else the status in words ("forbidden")."""
    refusal = getattr(request, REFUSAL_ATTRIBUTE, None)
    security = bool(refusal and refusal[1])
    code = _body_code(response)
    if code is None and refusal and refusal[0]:
        code = refusal[0]
    if code is None or not _CODE.fullmatch(code):
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "error"
        code = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")  # "Not Found": not_found
    return code, security


def _body_code(response: HttpResponse) -> str | None:
    data = getattr(response, "data", None)  # a DRF Response
    if data is None and not getattr(response, "streaming", False):
        if not response.get("Content-Type", "").startswith("application/json"):
            return None
        content = response.content
        if len(content) > _MAX_BODY_FOR_CODE:
            return None
        try:
            data = json.loads(content)
        except ValueError:
            return None
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


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
