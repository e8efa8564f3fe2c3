"""Every stream message has the envelope with `data`, and every count-changing space event
carries `counts`, whether it was sent live, replayed on reconnect or read back to fill a gap
(SPEC.md, "Compatibility decisions"; docs/streams.md, "Messages")."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from jobs import queries, services, streams
from spaces import scopes

from . import test_stream_consumers as base
from .test_stream_consumers import LIFECYCLE, create, key_for, open_socket, run_to_completion

# The stream tests' fixtures: the in-memory layer, the ASGI application, the ORM thread's cleanup.
anyio_backend = base.anyio_backend
in_memory_layer = base.in_memory_layer
close_orm_thread_connections = base.close_orm_thread_connections
application = base.application

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

COUNT_CHANGING = {"created", "delivered", "started", "completed", "retried", "pending"}


@pytest.fixture(autouse=True)
def no_relay(settings):
    """Only the path under test sends: the live fan-out, the replay or the gap filling."""
    settings.STREAM_RELAY_SECONDS = 0


async def space_path(space) -> str:
    token = await key_for(space, [scopes.READ])
    return f"/api/v1/realtime/spaces/{space.public_id}?token={token}"


async def test_every_message_of_both_streams_has_a_data_object(application, space):
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    space_socket = await open_socket(
        application, f"/api/v1/realtime/spaces/{space.public_id}", token
    )
    full = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)
    public = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    messages = [await space_socket.receive(), await full.receive(), await public.receive()]

    await run_to_completion(space)
    messages += [await space_socket.receive() for _ in LIFECYCLE]
    messages += [await full.receive() for _ in LIFECYCLE]
    messages += [await public.receive() for _ in ("progress", "completed")]
    await database_sync_to_async(streams.adjust_counts)(space.pk, {"completed": -1})
    messages.append(await space_socket.receive())
    await space_socket.comm.send_json_to({"type": "ping"})
    messages.append(await space_socket.receive())

    types = [m["type"] for m in messages]
    assert {"connected", "init", "counts", "pong", *LIFECYCLE} <= set(types)
    assert all("data" in m for m in messages), [m for m in messages if "data" not in m]
    # Messages of the stream itself (not job events) always have an object.
    own = [m for m in messages if m["type"] in {"connected", "init", "counts", "pong"}]
    assert len(own) == 5
    assert all(isinstance(m["data"], dict) for m in own)
    for socket in (space_socket, full, public):
        await socket.close()


async def test_init_data_is_the_job_snapshot_in_both_views(application, space):
    job = await create(space)

    @database_sync_to_async
    def halfway():
        (polled,) = services.poll_jobs(space)
        services.ack_job(polled)
        services.report_progress(polled, 50, "half way")

    await halfway()
    token = await key_for(space, [scopes.READ])
    full = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)
    public = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    for socket in (full, public):
        init = await socket.receive()
        assert init["data"] == {"status": init["status"], "progress": init["progress"]}
        assert init["data"]["status"] == "running"
        assert init["data"]["progress"]["percent"] == 50
        await socket.close()


async def test_replayed_events_carry_the_counts_they_carried_live(application, space):
    path = await space_path(space)
    live_socket = await open_socket(application, path)
    connected = await live_socket.receive()
    await create(space, "first")
    await create(space, "second")
    await run_to_completion(space)
    live = [await live_socket.receive() for _ in range(2 + len(LIFECYCLE))]
    await live_socket.close()
    assert {e["type"] for e in live if "counts" in e} == {
        "created",
        "delivered",
        "started",
        "completed",
    }

    # A client that saw only seq 1 reconnects: the rest is replayed, counts included.
    instance = connected["streamInstanceId"]
    socket = await open_socket(application, f"{path}&since=1&streamInstanceId={instance}")
    again = await socket.receive()
    assert (again["missed"], again["seq"]) == (False, live[-1]["seq"])
    replayed = [await socket.receive() for _ in live[1:]]
    assert replayed == live[1:]
    assert replayed[-1]["counts"] == again["counts"]
    assert await socket.silent()
    await socket.close()


async def test_a_replay_from_zero_counts_from_an_empty_space(application, space, monkeypatch):
    monkeypatch.setattr("jobs.consumers.REPLAY_PAGE", 2)  # counts carry across pages
    for name in ("a", "b", "c"):
        await create(space, name)
    await run_to_completion(space)
    path = await space_path(space)
    instance = streams.stream_instance_id(space.public_id)
    socket = await open_socket(application, f"{path}&since=0&streamInstanceId={instance}")
    connected = await socket.receive()
    replayed = [await socket.receive() for _ in range(connected["seq"])]
    pending = [e["counts"]["pending"] for e in replayed if e["type"] == "created"]
    assert pending == [1, 2, 3]
    assert replayed[-1]["counts"] == connected["counts"]
    assert connected["counts"] == dict.fromkeys(queries.STATUSES, 0) | {
        "pending": 2,
        "completed": 1,
    }
    await socket.close()


async def test_gap_filled_events_carry_their_counts(application, space, monkeypatch):
    socket = await open_socket(application, await space_path(space))
    await socket.receive()

    # The first job's messages are lost; the second's arrive and reveal the gap.
    monkeypatch.setattr(streams, "fan_out", lambda messages: True)
    await create(space, "first")
    monkeypatch.undo()
    await create(space, "second")

    filled, live = await socket.receive(), await socket.receive()
    assert (filled["seq"], filled["jobName"], filled["counts"]["pending"]) == (1, "first", 1)
    assert (live["seq"], live["jobName"], live["counts"]["pending"]) == (2, "second", 2)
    await socket.close()


async def test_events_caught_up_after_a_fan_out_outage_carry_their_counts(
    application, space, monkeypatch, settings
):
    settings.STREAM_RECHECK_SECONDS = 0.05
    await create(space)
    socket = await open_socket(application, await space_path(space))
    await socket.receive()
    monkeypatch.setattr(streams, "fan_out", lambda messages: False)

    await run_to_completion(space)
    caught_up = [await socket.receive() for _ in LIFECYCLE]
    assert [e["type"] for e in caught_up] == LIFECYCLE
    counts = {e["type"]: e["counts"] for e in caught_up if "counts" in e}
    assert set(counts) == {"delivered", "started", "completed"}
    assert (counts["delivered"]["pending"], counts["delivered"]["delivered"]) == (0, 1)
    assert counts["completed"] == dict.fromkeys(queries.STATUSES, 0) | {"completed": 1}
    assert all("counts" not in e for e in caught_up if e["type"] not in COUNT_CHANGING)
    await socket.close()
