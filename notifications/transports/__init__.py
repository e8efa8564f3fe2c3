"""One transport per notification kind, all built on base.Transport."""

from __future__ import annotations

from .base import Message, Transport, TransportError
from .callback import CallbackTransport
from .slack import SlackTransport
from .webhook import PushTransport

TRANSPORTS: dict[str, type[Transport]] = {
    t.channel: t for t in (SlackTransport, PushTransport, CallbackTransport)
}


def transport_for(channel: str, space) -> Transport:
    return TRANSPORTS[channel](space)


__all__ = [
    "TRANSPORTS",
    "CallbackTransport",
    "Message",
    "PushTransport",
    "SlackTransport",
    "Transport",
    "TransportError",
    "transport_for",
]
