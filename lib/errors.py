"""Domain errors: what a caller did that the service refuses, as a machine code and a message.

They carry no HTTP status. The lifecycle, the settings services and the API views raise them;
each surface says them its own way: config/exceptions.py maps each kind to an HTTP status for
the API, the dashboard shows the message, management commands turn it into a CommandError.

    raise Conflict("stale_claim", "The claim id is no longer this job's current claim")
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable `code` (documented in docs/api.md), a `message` for people and
    optional `details` (field -> messages, or per-item problems)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class Invalid(DomainError):
    """The request is malformed or breaks a rule of its fields."""


class Forbidden(DomainError):
    """The caller may not do this (a scope or a role is missing)."""


class NotFound(DomainError):
    """No such object, or none the caller may see (the same answer, so ids cannot be probed)."""


class Conflict(DomainError):
    """The object's state does not allow it now: a status, a stale claim, a paused space."""


class TooLarge(DomainError):
    """A body over the cap."""


class Unsupported(DomainError):
    """A media type or encoding the service does not read."""


class Throttled(DomainError):
    """Too many calls; `wait` says in how many seconds to come back."""

    def __init__(self, code: str, message: str, details: Any = None, *, wait: int = 1) -> None:
        super().__init__(code, message, details)
        self.wait = wait


def validation_error(details: Any, message: str = "Validation failed") -> Invalid:
    """The one shape of a field-rule refusal: `details` maps field (or item index) -> messages."""
    return Invalid("validation_error", message, details)
