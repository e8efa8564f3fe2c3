"""One JSON object per log line, for production log pipelines."""

from __future__ import annotations

import json
import logging
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
