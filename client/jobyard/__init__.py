"""Jobyard's Python client: a producer API, a worker runner and a push-wake receiver.

Needs only ``requests`` (and ``websockets`` to wait on a job's stream), not Django::

    from jobyard import Client, Worker

    client = Client("http://localhost:8000", token, space)
    job = client.create("email.send", {"to": "a@example.com"})
    print(client.wait(job["id"], timeout=60)["result"])

See docs/client.md.
"""

from __future__ import annotations

# Before the imports: client.py names it in its User-Agent.
__version__ = "0.2.0"

from .client import FINAL_STATUSES, Client
from .errors import (
    AuthError,
    Conflict,
    InvalidSignature,
    InvalidTransition,
    JobKilled,
    JobyardError,
    NotFound,
    PayloadTooLarge,
    PermanentFailure,
    RateLimited,
    ScopeError,
    ServerError,
    StaleClaim,
    Unreachable,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
    error_info,
    parse_error,
)
from .push import PushApp, receive_push, sign, verify_signature
from .worker import JobHandle, JobLogHandler, Worker, current_job

__all__ = [
    "FINAL_STATUSES",
    "AuthError",
    "Client",
    "Conflict",
    "InvalidSignature",
    "InvalidTransition",
    "JobHandle",
    "JobKilled",
    "JobLogHandler",
    "JobyardError",
    "NotFound",
    "PayloadTooLarge",
    "PermanentFailure",
    "PushApp",
    "RateLimited",
    "ScopeError",
    "ServerError",
    "StaleClaim",
    "Unreachable",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "Worker",
    "current_job",
    "error_info",
    "parse_error",
    "receive_push",
    "sign",
    "verify_signature",
]
