"""Verbs on a space's notification settings (its SpaceChannels row), shared by the dashboard
and the CLI.

Saving a Slack URL (even the same one) clears slack_disabled_at and slack_last_error: that is
how a channel disabled by a permanent failure is turned back on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from lib.errors import Invalid
from lib.http_headers import validate_headers
from lib.outbound import validate_outbound_url
from spaces.models import Space

from .models import NotificationDelivery, SpaceChannels, new_push_secret
from .transports import Message, PushTransport, SlackTransport, TransportError
from .transports.slack import EVENTS as SLACK_EVENTS

MAX_PUSH_NAMES = 100
MAX_NAME_LENGTH = 200
# What a new Slack channel sends when no events were chosen: the ones that need attention.
DEFAULT_SLACK_EVENTS = ["failed", "dead"]


# SpaceChannels.push_url is a varchar(500); the Slack URL is held to the same bound.
MAX_SETTINGS_URL_LENGTH = 500


class SettingsError(Invalid):
    """Invalid notification settings; `details` maps each field to its messages."""

    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__("validation_error", "Invalid notification settings", details)


def _url_errors(url: str) -> list[str]:
    if url == "":
        return []
    if len(url) > MAX_SETTINGS_URL_LENGTH:
        return [f"must be at most {MAX_SETTINGS_URL_LENGTH} characters"]
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


def _locked_channels(space: Space) -> SpaceChannels:
    """SPACE's channels, locked until the end of the transaction (made first if it has none)."""
    SpaceChannels.objects.get_or_create(space_id=space.pk)
    channels = SpaceChannels.objects.select_for_update().get(pk=space.pk)
    space.channels = channels  # the caller's space shows what was saved
    return channels


def update_slack(
    space: Space, *, url: str | None = None, events: list[str] | None = None
) -> SpaceChannels:
    """Set the Slack webhook (empty URL: off) and/or the events to send; None keeps a value.

    Saving a URL, even the same one, re-enables a channel disabled by a permanent failure.
    """
    if url is not None:
        url = url.strip()
    if errors := validate_slack(url or "", events):
        raise SettingsError(errors)
    with transaction.atomic():
        channels = _locked_channels(space)
        fields = []
        if url is not None:
            channels.slack_webhook_url = url
            channels.slack_disabled_at = None
            channels.slack_last_error = ""
            fields += ["slack_webhook_url", "slack_disabled_at", "slack_last_error"]
        if events is not None:
            channels.slack_events = [e for e in SLACK_EVENTS if e in set(events)]
            fields.append("slack_events")
        elif url and not channels.slack_events:
            channels.slack_events = list(DEFAULT_SLACK_EVENTS)
            fields.append("slack_events")
        if fields:
            channels.save(update_fields=fields)
    return channels


def update_push(
    space: Space,
    *,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    names: list[str] | None = None,
) -> SpaceChannels:
    """Set the push URL (empty: off), its headers and/or its job-name filter (empty list:
    every name); None keeps a value."""
    if url is not None:
        url = url.strip()
    if names is not None:
        names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if errors := validate_push(url or "", headers, names):
        raise SettingsError(errors)
    with transaction.atomic():
        channels = _locked_channels(space)
        fields = []
        if url is not None:
            channels.push_url = url
            channels.push_last_error = ""
            fields += ["push_url", "push_last_error"]
        if headers is not None:
            channels.push_headers = dict(headers)
            fields.append("push_headers")
        if names is not None:
            channels.push_names = names
            fields.append("push_names")
        if fields:
            channels.save(update_fields=fields)
    return channels


def rotate_push_secret(space: Space) -> str:
    """A new signing secret for pushes and callbacks; the old one stops verifying at once."""
    with transaction.atomic():
        channels = _locked_channels(space)
        channels.push_secret = new_push_secret()
        channels.save(update_fields=["push_secret"])
    return channels.push_secret


def _send_test(transport: SlackTransport | PushTransport, channel: str) -> NotificationDelivery:
    message = Message(event="test")
    if transport.is_noop(message):
        raise Invalid("not_configured", f"Set a {channel} URL first")
    try:
        return transport.notify(message)
    except TransportError as error:
        # A test never retries and never disables the channel; the row carries the outcome.
        if error.delivery is None:  # pragma: no cover - notify() always attaches it
            raise
        return error.delivery


def send_test_slack(space: Space) -> NotificationDelivery:
    """Post a test message to the space's Slack webhook now (synchronously, no retry)."""
    space = Space.objects.select_related("organization", "channels").get(pk=space.pk)
    return _send_test(SlackTransport(space), "Slack webhook")


def send_test_push(space: Space) -> NotificationDelivery:
    """POST a signed test push to the space's push URL now (synchronously, no retry)."""
    space = Space.objects.select_related("organization", "channels").get(pk=space.pk)
    return _send_test(PushTransport(space), "push")


def recent_deliveries(space: Space, limit: int = 50):
    """The settings page's list (index delivery_space_recent_idx)."""
    return NotificationDelivery.objects.filter(space=space).select_related("job")[:limit]
