"""The stream-connection gauge follows sockets opening and closing."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from prometheus_client import REGISTRY

from jobs import streams
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()


@pytest.fixture(autouse=True)
async def close_orm_thread_connections(anyio_backend):
    yield
    await database_sync_to_async(connections.close_all)()


def open_streams(kind: str) -> float:
    return REGISTRY.get_sample_value("jobyard_stream_connections", {"kind": kind}) or 0.0


@database_sync_to_async
def space_and_key() -> tuple[str, str]:
    space = SpaceFactory()
    return space.public_id, issue_key(space, [scopes.READ])


async def test_open_space_streams_are_counted():
    from config.asgi import application

    space_id, key = await space_and_key()
    before = open_streams("space")
    comm = WebsocketCommunicator(application, f"/api/v1/realtime/spaces/{space_id}?token={key}")

    connected, _ = await comm.connect()
    first = await comm.receive_json_from(timeout=5)
    during = open_streams("space")
    await comm.disconnect()

    assert connected and first["type"] == "connected"
    assert during - before == 1
    assert open_streams("space") == before
