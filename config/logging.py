"""One JSON object per log line, for production log pipelines; and the filter that keeps
expected refusals (4xx) to the one line RequestLogMiddleware writes."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from django.http import HttpRequest

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Structured fields passed with `extra=` (space, job, transition, duration_ms, ...).
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _safe(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _safe(value: object) -> object:
    # django.request passes the request itself, whose repr holds the query string (stream
    # tokens travel there): keep only the method and the path.
    if isinstance(value, HttpRequest):
        return f"{value.method} {value.path}"
    return value


# Django logs every 4xx answer a second time, on django.request (403s it turned from an
# exception with the traceback of that exception) or on django.security.<name> (400s from a
# SuspiciousOperation, at ERROR with a traceback; CSRF failures). RequestLogMiddleware already
# writes one line per request, so RefusalFilter drops those records and leaves the reason on the
# request, for that line's `code`. Filters on a logger only see records logged on that very
# logger, so each of Django's security loggers is named here (django/core/exceptions.py, the
# sessions, admin and CSRF code).
REFUSAL_LOGGERS = (
    "django.request",
    "django.security.csrf",
    "django.security.DisallowedHost",
    "django.security.DisallowedRedirect",
    "django.security.DisallowedModelAdminLookup",
    "django.security.DisallowedModelAdminToField",
    "django.security.InvalidSessionKey",
    "django.security.RequestDataTooBig",
    "django.security.SuspiciousFileOperation",
    "django.security.SuspiciousMultipartForm",
    "django.security.SuspiciousOperation",
    "django.security.SuspiciousSession",
    "django.security.TooManyFieldsSent",
    "django.security.TooManyFilesSent",
)

# Set on the request by RefusalFilter: (code, whether Django's security loggers reported it).
REFUSAL_ATTRIBUTE = "_jobyard_refusal"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """PermissionDenied -> permission_denied; DisallowedHost -> disallowed_host."""
    return _CAMEL.sub("_", name).lower()


class RefusalFilter(logging.Filter):
    """Drops Django's own record of a 4xx answer (RequestLogMiddleware writes the one line);
    passes everything else, 5xx with their tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or status >= 500:
            return True
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest) and not hasattr(request, REFUSAL_ATTRIBUTE):
            security = record.name.startswith("django.security.")
            if security:
                suffix = record.name.rsplit(".", 1)[-1]
                code = "csrf_failed" if suffix == "csrf" else snake(suffix)
            elif record.exc_info and record.exc_info[0] is not None:
                code = snake(record.exc_info[0].__name__)
            else:
                code = None
            setattr(request, REFUSAL_ATTRIBUTE, (code, security))
        return False
