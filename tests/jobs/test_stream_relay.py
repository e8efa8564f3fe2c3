"""Events committed by other processes reach this process's streams on the in-memory channel
layer (jobs/streams.py, LocalRelay): the embedded default, where the scheduler's scheduled ->
pending used to wait for a re-check."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.utils import timezone

from jobs import services, streams
from spaces import scopes

from . import test_stream_consumers as base
from .test_stream_consumers import LIFECYCLE, create, key_for, open_socket, run_to_completion

# The stream tests' fixtures: the in-memory layer, the ASGI application, the ORM thread's cleanup.
anyio_backend = base.anyio_backend
in_memory_layer = base.in_memory_layer
close_orm_thread_connections = base.close_orm_thread_connections
application = base.application

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# "Within a second" of the commit (docs/streams.md, "Several processes").
WITHIN = 1.0


@pytest.fixture(autouse=True)
def relay_fresh(settings):
    settings.STREAM_RELAY_SECONDS = 0.25
    yield
    assert streams.relay.watched() == {}, "a stream of the test was left open"


def database_url() -> str:
    """The test database, for a process of its own."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def run_elsewhere(code: str) -> None:
    """CODE in another Python process on the same database, as the scheduler runs."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url()}
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True
    )


async def receive_within(socket, seconds: float = WITHIN) -> dict:
    return await socket.comm.receive_json_from(timeout=seconds)


async def test_the_schedulers_staging_reaches_an_open_space_stream_within_a_second(
    application, space
):
    # given: a job due in an hour, and a space stream open in this (the web) process
    @database_sync_to_async
    def create_scheduled():
        later = timezone.now() + timedelta(hours=1)
        job, _ = services.create_job(space, {"name": "report.build", "scheduled_for": later})
        return job

    job = await create_scheduled()
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    connected = await socket.receive()
    assert connected["counts"]["scheduled"] == 1

    # when: the scheduler process stages it (its own sequencer sends to its own layer)
    await asyncio.to_thread(
        run_elsewhere,
        """
        from datetime import timedelta
        from django.utils import timezone
        from jobs import services
        services.stage_due(timezone.now() + timedelta(hours=2))
        """,
    )

    # then: the web process's stream hears it, with its counts
    event = await receive_within(socket)
    assert (event["type"], event["jobId"], event["seq"]) == ("pending", job.pk, 2)
    assert (event["counts"]["scheduled"], event["counts"]["pending"]) == (0, 1)
    assert await socket.silent()
    await socket.close()


async def test_a_job_created_by_another_process_reaches_space_and_job_streams(application, space):
    existing = await create(space, "already.there")
    token = await key_for(space, [scopes.READ])
    space_socket = await open_socket(
        application, f"/api/v1/realtime/spaces/{space.public_id}", token
    )
    job_socket = await open_socket(application, f"/api/v1/realtime/{existing.pk}", token)
    await space_socket.receive()
    await job_socket.receive()

    await asyncio.to_thread(
        run_elsewhere,
        f"""
        from jobs import services
        from spaces.models import Space
        space = Space.objects.get(pk={space.pk})
        services.create_job(space, {{"name": "from.elsewhere"}})
        (job,) = services.poll_jobs(space)
        services.ack_job(job)
        """,
    )

    received = [await receive_within(space_socket) for _ in range(3)]
    assert [(e["type"], e["seq"]) for e in received] == [
        ("created", 2),
        ("delivered", 3),
        ("started", 4),
    ]
    assert received[0]["jobName"] == "from.elsewhere"
    assert all("counts" in e for e in received)
    # The first job was polled (oldest first): its stream hears its events too.
    assert [(await receive_within(job_socket))["type"] for _ in range(2)] == [
        "delivered",
        "started",
    ]
    assert await space_socket.silent()
    assert await job_socket.silent()
    await space_socket.close()
    await job_socket.close()


async def test_events_the_local_fan_out_never_sent_are_relayed_once_and_in_order(
    application, space, monkeypatch
):
    """As when another process committed them: numbered and stored, but never sent here."""
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    space_socket = await open_socket(
        application, f"/api/v1/realtime/spaces/{space.public_id}", token
    )
    job_socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)
    await space_socket.receive()
    await job_socket.receive()
    before = streams.relay.relayed

    monkeypatch.setattr(streams, "fan_out", lambda messages: False)
    await run_to_completion(space)

    relayed = [await receive_within(space_socket) for _ in LIFECYCLE]
    assert [e["type"] for e in relayed] == LIFECYCLE
    assert [e["seq"] for e in relayed] == [2, 3, 4, 5, 6, 7]
    with_counts = {e["type"]: e["counts"]["completed"] for e in relayed if "counts" in e}
    assert with_counts == {"delivered": 0, "started": 0, "completed": 1}
    assert [(await receive_within(job_socket))["type"] for _ in LIFECYCLE] == LIFECYCLE
    assert streams.relay.relayed - before == len(LIFECYCLE)
    assert await space_socket.silent()
    assert await job_socket.silent()
    await space_socket.close()
    await job_socket.close()


async def test_what_the_local_sequencer_sent_is_not_read_again(application, space):
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()
    before_relayed, before_looks = streams.relay.relayed, streams.relay.looks

    await create(space)
    assert (await socket.receive())["seq"] == 1
    # Bounded wait for two more looks of the relay at the database.
    for _ in range(100):
        if streams.relay.looks >= before_looks + 2:
            break
        await asyncio.sleep(0.05)
    assert streams.relay.looks >= before_looks + 2
    assert streams.relay.relayed == before_relayed
    assert await socket.silent()
    await socket.close()


async def test_the_relay_runs_only_while_a_stream_is_open(application, space):
    token = await key_for(space, [scopes.READ])
    assert streams.relay.watched() == {}

    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()
    other = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await other.receive()
    assert streams.relay.watched() == {space.pk: 0}
    task = streams.relay._task
    assert task is not None and not task.done()

    await socket.close()
    assert streams.relay.watched() == {space.pk: 0}  # one stream still open
    await other.close()
    # No stream open: no task, hence no query at all.
    assert streams.relay.watched() == {}
    await asyncio.sleep(0)
    assert task.done()


def test_the_relay_stays_off_with_redis(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/13"]},
        }
    }
    assert streams.LocalRelay.enabled() is False


def test_the_relay_can_be_turned_off(settings):
    settings.STREAM_RELAY_SECONDS = 0
    assert streams.LocalRelay.enabled() is False


def test_the_sequencer_moves_the_mark_only_past_a_contiguous_batch():
    relay = streams.LocalRelay()
    relay._marks = {1: 5}
    relay.sent(1, 6, 8)  # right after the mark
    relay.sent(1, 12, 14)  # 9..11 were numbered by another process: the relay still sends them
    relay.sent(2, 1, 3)  # a space no stream here follows
    assert relay.watched() == {1: 8}
