"""Verbs on a space's notification settings, shared by the dashboard and the CLI.

Saving a Slack URL (even the same one) clears slack_disabled_at and slack_last_error: that is
how a channel disabled by a permanent failure is turned back on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from config.exceptions import ApiError
from lib.http_headers import validate_headers
from lib.outbound import validate_outbound_url
from spaces.models import Space, new_push_secret

from .models import NotificationDelivery
from .transports import Message, PushTransport, SlackTransport, TransportError
from .transports.slack import EVENTS as SLACK_EVENTS

MAX_PUSH_NAMES = 100
MAX_NAME_LENGTH = 200
# What a new Slack channel sends when no events were chosen: the ones that need attention.
DEFAULT_SLACK_EVENTS = ["failed", "dead"]


class SettingsError(ApiError):
    """Invalid notification settings; `details` maps each field to its messages."""

    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__(400, "validation_error", "Invalid notification settings", details)


def _url_errors(url: str) -> list[str]:
    if url == "":
        return []
    return validate_outbound_url(url, allow_private=settings.OUTBOUND_ALLOW_PRIVATE)


def validate_slack(url: str, events: list[str] | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if problems := _url_errors(url):
        errors["slack_webhook_url"] = problems
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            errors["slack_events"] = ["must be a list of event names"]
        elif unknown := sorted(set(events) - set(SLACK_EVENTS)):
            errors["slack_events"] = [
                f"unknown events: {', '.join(unknown)} (choose from {', '.join(SLACK_EVENTS)})"
            ]
    return errors


def validate_push(
    url: str, headers: dict[str, str] | None, names: list[str] | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if problems := _url_errors(url):
        errors["push_url"] = problems
    if headers is not None and (problems := validate_headers(headers)):
        errors["push_headers"] = problems
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            errors["push_names"] = ["must be a list of job names"]
        elif len(names) > MAX_PUSH_NAMES:
            errors["push_names"] = [f"at most {MAX_PUSH_NAMES} names"]
        elif any(not n or len(n) > MAX_NAME_LENGTH for n in names):
            errors["push_names"] = [f"names must be 1-{MAX_NAME_LENGTH} characters"]
    return errors


def update_slack(space: Space, *, url: str, events: list[str] | None = None) -> Space:
    """Set the Slack webhook (empty URL: off) and, when given, the events to send."""
    url = url.strip()
    if errors := validate_slack(url, events):
        raise SettingsError(errors)
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        space.slack_webhook_url = url
        if events is not None:
            space.slack_events = [e for e in SLACK_EVENTS if e in set(events)]
        elif url and not space.slack_events:
            space.slack_events = list(DEFAULT_SLACK_EVENTS)
        space.slack_disabled_at = None
        space.slack_last_error = ""
        space.save(
            update_fields=[
                "slack_webhook_url",
                "slack_events",
                "slack_disabled_at",
                "slack_last_error",
            ]
        )
    return space


def update_push(
    space: Space,
    *,
    url: str,
    headers: dict[str, str] | None = None,
    names: list[str] | None = None,
) -> Space:
    """Set the push URL (empty: off) and, when given, its headers and job-name filter."""
    url = url.strip()
    if names is not None:
        names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if errors := validate_push(url, headers, names):
        raise SettingsError(errors)
    with transaction.atomic():
        space = Space.objects.select_for_update().get(pk=space.pk)
        space.push_url = url
        if headers is not None:
            space.push_headers = dict(headers)
        if names is not None:
            space.push_names = names
        space.push_last_error = ""
        space.save(update_fields=["push_url", "push_headers", "push_names", "push_last_error"])
    return space


def rotate_push_secret(space: Space) -> str:
    """A new signing secret for pushes and callbacks; the old one stops verifying at once."""
    space.push_secret = new_push_secret()
    space.save(update_fields=["push_secret"])
    return space.push_secret


def _send_test(transport: SlackTransport | PushTransport, channel: str) -> NotificationDelivery:
    message = Message(event="test")
    if transport.is_noop(message):
        raise ApiError(400, "not_configured", f"Set a {channel} URL first")
    try:
        return transport.notify(message)
    except TransportError as error:
        # A test never retries and never disables the channel; the row carries the outcome.
        if error.delivery is None:  # pragma: no cover - notify() always attaches it
            raise
        return error.delivery


def send_test_slack(space: Space) -> NotificationDelivery:
    """Post a test message to the space's Slack webhook now (synchronously, no retry)."""
    space = Space.objects.select_related("organization").get(pk=space.pk)
    return _send_test(SlackTransport(space), "Slack webhook")


def send_test_push(space: Space) -> NotificationDelivery:
    """POST a signed test push to the space's push URL now (synchronously, no retry)."""
    space = Space.objects.select_related("organization").get(pk=space.pk)
    return _send_test(PushTransport(space), "push")


def recent_deliveries(space: Space, limit: int = 50):
    """The settings page's list (index delivery_space_recent_idx)."""
    return NotificationDelivery.objects.filter(space=space).select_related("job")[:limit]
