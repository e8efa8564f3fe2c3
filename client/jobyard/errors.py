"""Typed errors: every error response of the server becomes one of these.

The server answers errors as ``{"error": <message>, "code": <machine code>, "details"?: {...}}``;
the exception carries the HTTP status, the code and the message, and its class says what
happened without string matching::

    try:
        client.complete(job_id, result, claim_id=claim_id)
    except StaleClaim:
        ...  # the lease ran out and the job went to another worker
"""

from __future__ import annotations

import json
from typing import Any


class JobyardError(Exception):
    """Base of every error raised by the client."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.response = response

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None or self.code:
            parts.append(
                f"({self.status or ''}{' ' if self.status and self.code else ''}{self.code or ''})"
            )
        if self.details:
            parts.append(f"details={self.details}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class ValidationError(JobyardError):
    """400: the request body or a parameter is invalid; ``details`` maps fields to messages."""


class AuthError(JobyardError):
    """401: the API key is missing, unknown or revoked."""


class ScopeError(JobyardError):
    """403: the key lacks a scope (``Missing required scope: <scope>``) or the space."""


class NotFound(JobyardError):
    """404: no such job, or a job of another space."""


class Conflict(JobyardError):
    """409: the call is not allowed in the job's current state."""


class InvalidTransition(Conflict):
    """409 ``invalid_transition``: e.g. completing a job that is already completed."""


class StaleClaim(Conflict):
    """409 ``stale_claim``: the claim id is no longer the job's (the lease ran out)."""


class JobKilled(Conflict):
    """409 ``job_killed``: the job was killed; stop working on it."""


class PayloadTooLarge(JobyardError):
    """413: the request body is larger than the server accepts."""


class UnsupportedMediaType(JobyardError):
    """415: wrong content type."""


class RateLimited(JobyardError):
    """429: too many requests for this key; wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(JobyardError):
    """5xx or an answer that is not the API's JSON: worth retrying later."""


class Unreachable(JobyardError):
    """The server could not be reached (connection refused, DNS, timeout)."""


class WaitTimeout(JobyardError, TimeoutError):
    """``Client.wait`` gave up before the job reached a final status."""


class InvalidSignature(JobyardError):
    """A push-wake request whose signature does not match the body."""


# Exceptions a worker may raise from its function to steer the failure.
class PermanentFailure(Exception):  # noqa: N818 - reads as what it does: ``raise PermanentFailure``
    """Raise from a job function to fail the job without a retry (it goes dead at once)."""


_BY_STATUS: dict[int, type[JobyardError]] = {
    400: ValidationError,
    401: AuthError,
    403: ScopeError,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
}

_CONFLICTS: dict[str, type[Conflict]] = {
    "invalid_transition": InvalidTransition,
    "stale_claim": StaleClaim,
    "job_killed": JobKilled,
}

# Errors worth retrying: the server may answer differently in a moment.
TRANSIENT: tuple[type[JobyardError], ...] = (Unreachable, ServerError, RateLimited)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # An HTTP date is allowed too; not worth parsing: fall back to the caller's backoff.
        return None


def error_from_response(response: Any) -> JobyardError:
    """The typed exception for a ``requests.Response`` that is not a success."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error" in body or "code" in body):
        message = str(body.get("error") or body.get("detail") or f"HTTP {status}")
        code = body.get("code")
        details = body.get("details")
    else:
        text = (getattr(response, "text", "") or "").strip()
        message = text[:200] or f"HTTP {status}"
        code = None
        details = None

    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "details": details,
        "response": response,
    }
    if status == 429:
        return RateLimited(
            message, retry_after=_parse_retry_after(response.headers.get("Retry-After")), **kwargs
        )
    if status == 409 and code in _CONFLICTS:
        return _CONFLICTS[code](message, **kwargs)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 or not isinstance(body, dict) else JobyardError
    return cls(message, **kwargs)


# --- a job function's exception, as the job's error ---------------------------------------

# The server keeps at most this many characters of an error (the JSON text of an object): the
# object is cut to fit before it is sent, so it always arrives whole.
MAX_ERROR_CHARS = 10_000
_CUT = "... (cut)\n"


def error_info(exc: BaseException, *, limit: int = MAX_ERROR_CHARS) -> dict[str, str]:
    """``{"type", "message", "traceback"}`` of an exception, as a worker sends it with fail.

    ``type`` is the qualified class name (``myapp.errors.BadInput``; builtins unqualified),
    ``traceback`` the formatted traceback. The JSON of the whole fits in ``limit`` characters:
    the message is cut first to a quarter of it, then the traceback from its start (its last
    frames, where it was raised, are kept).
    """
    import traceback as tb

    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    message = str(exc) or cls.__name__
    report = tb.TracebackException.from_exception(exc)
    lines = list(report.format())
    info = {"type": name, "message": message, "traceback": "".join(lines)}
    if len(json.dumps(info)) <= limit:
        return info
    if len(json.dumps(message)) > limit // 4:
        info["message"] = _fit(message, limit // 4, keep="start")
        # The traceback ends with the exception line, message and all: end it with the cut one.
        only = list(report.format_exception_only())
        if only and lines[-len(only) :] == only:
            lines = lines[: -len(only)] + [f"{cls.__qualname__}: {info['message']}\n"]
    room = limit - len(json.dumps({**info, "traceback": ""}))
    info["traceback"] = _fit("".join(lines), max(0, room), keep="end")
    return info


def _fit(text: str, limit: int, *, keep: str) -> str:
    """TEXT cut (with a marker) until its JSON string form takes at most LIMIT characters."""
    if len(json.dumps(text)) <= limit:
        return text
    cut = _CUT if keep == "end" else _CUT.strip()
    low, high = 0, len(text)  # the longest kept length whose JSON fits
    while low < high:
        mid = (low + high + 1) // 2
        kept = cut + text[-mid:] if keep == "end" else text[:mid] + cut
        if len(json.dumps(kept)) <= limit:
            low = mid
        else:
            high = mid - 1
    if low == 0:
        return ""
    return cut + text[-low:] if keep == "end" else text[:low] + cut


def parse_error(value: Any) -> dict[str, Any] | None:
    """A job's ``error`` as ``{"type", "message", "traceback"}``: the object a worker sent
    (the server answers it as JSON text), or a plain message with no type and traceback."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and {"type", "message", "traceback"} & parsed.keys():
                value = parsed
    if isinstance(value, dict):
        return {
            "type": value.get("type"),
            "message": str(value.get("message") or ""),
            "traceback": value.get("traceback"),
        }
    return {"type": None, "message": str(value), "traceback": None}
