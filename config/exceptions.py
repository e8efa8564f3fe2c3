"""Every API error is JSON: {"error": <message>, "code": <machine code>, "details"?: {...}}.

Domain errors (lib/errors.py) carry no HTTP status: this is the one place that gives each kind
its status. DRF's exception handler covers the API views; ApiErrorsMiddleware covers what
Django answers itself under /api/ (an unknown path, DEBUG's technical 404 page, a 405 from a
plain view or an HTML renderer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lib import errors

HTTP_STATUS: dict[type[errors.DomainError], int] = {
    errors.Invalid: 400,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Unsupported: 415,
    errors.Throttled: 429,
}


def http_status(error: errors.DomainError) -> int:
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def _codes(detail) -> str:
    if isinstance(detail, dict):
        return "validation_error"
    return getattr(detail, "code", None) or "error"


def api_exception_handler(exc, context):
    if isinstance(exc, errors.DomainError):
        body = {"error": exc.message, "code": exc.code}
        if exc.details is not None:
            body["details"] = exc.details
        response = Response(body, status=http_status(exc))
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(exc.wait)
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is away (restart, failover): answer fast and let the client retry,
        # rather than a 500 that reads as a bug.
        response = Response(
            {"error": "The database is unavailable, retry shortly", "code": "unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else None
    if isinstance(exc, exceptions.ValidationError):
        details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = {
            "error": "Validation failed",
            "code": "validation_error",
            "details": details,
        }
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = {"error": "Invalid or missing API key", "code": "invalid_api_key"}
    else:
        message = str(detail) if detail is not None else str(exc)
        response.data = {"error": message, "code": _codes(detail)}
    return response


def json_404(request, exception=None):
    return JsonResponse({"error": "Not found", "code": "not_found"}, status=404)


def json_500(request):
    return JsonResponse({"error": "Internal server error", "code": "server_error"}, status=500)


API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path == API_PREFIX.rstrip("/") or request.path.startswith(API_PREFIX)


def as_json_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """RESPONSE itself unless it is a 404 or 405 in HTML; then the API's JSON for it, worded
    as json_404 and DRF's 405 word it. (Other refusals Django answers itself, such as a foreign
    Host header's 400, keep their answer: the request log names their reason.)"""
    if response.status_code not in (404, 405):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    if response.status_code == 404:
        return json_404(request)
    json_response = JsonResponse(
        {"error": f'Method "{request.method}" not allowed.', "code": "method_not_allowed"},
        status=405,
    )
    if "Allow" in response:
        json_response["Allow"] = response["Allow"]
    return json_response


class ApiErrorsMiddleware:
    """Under /api/, a 404 or 405 that Django or a template answered in HTML becomes JSON.

    With DEBUG on, Django answers an unknown path with its technical 404 page (handler404 only
    runs with DEBUG off), which lists every URL pattern; a client of the API gets the same
    JSON whatever DEBUG says. An HTML renderer's error (the docs page's 405) is turned too.
    """

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
        response = self.get_response(request)
        return as_json_error(request, response) if _is_api(request) else response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        return as_json_error(request, response) if _is_api(request) else response
