"""The sequencer thread: committed events are numbered and sent off the request path
(STREAM_SEQUENCER = "thread", the production setting; the rest of the suite numbers inline)."""

from __future__ import annotations

import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from jobs import services, streams
from jobs.models import Job, JobEvent
from spaces import scopes
from spaces.models import Space
from tests import threads
from tests.factories import SpaceFactory, issue_key


@pytest.fixture(autouse=True)
def thread_mode(settings):
    settings.STREAM_SEQUENCER = "thread"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()
    yield
    # Nothing of this test may still be numbering while the database is flushed.
    assert streams.sequencer.flush(timeout=10)


def _seqs(space: Space) -> list[int | None]:
    return list(JobEvent.objects.filter(space=space).order_by("id").values_list("seq", flat=True))


@pytest.mark.django_db(transaction=True)
def test_an_api_call_returns_before_its_event_is_numbered(api, space, monkeypatch):
    job, _ = services.create_job(space, {"name": "x"})
    assert streams.sequencer.flush()
    (job,) = services.poll_jobs(space)
    assert streams.sequencer.flush()
    gate = threading.Event()
    real = streams.publish_space

    def held(space_id: int) -> int:
        gate.wait(10)
        return real(space_id)

    monkeypatch.setattr(streams, "publish_space", held)
    try:
        response = api.post(f"/api/v1/jobs/{job.id}/ack", HTTP_X_CLAIM_ID=job.claim_id)
        assert response.status_code == 200
        # The ack committed, and its event waits for the (held) sequencer.
        assert Job.objects.get(pk=job.pk).status == "running"
        assert _seqs(space)[-1] is None
    finally:
        gate.set()
    assert streams.sequencer.flush()
    assert _seqs(space) == [1, 2, 3]
    space.refresh_from_db()
    assert space.event_seq == 3
    assert space.status_counts["running"] == 1 and space.status_counts["pending"] == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_concurrent_publishers_get_one_contiguous_seq():
    space = SpaceFactory()

    def producer(n: int) -> None:
        for i in range(n):
            services.create_job(space, {"name": f"job{i % 3}"})

    threads.run_together(8, producer, 25)
    assert streams.sequencer.flush(timeout=30)
    seqs = _seqs(space)
    assert len(seqs) == 200
    # Every event numbered once: no gap, no repeat (ids need not follow commit order across
    # concurrent transactions, so seq order is not id order here).
    assert sorted(seqs) == list(range(1, 201))
    space.refresh_from_db()
    assert space.event_seq == 200 and space.status_counts["pending"] == 200


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_the_space_stream_gets_events_numbered_by_the_thread(space):
    from config.asgi import application

    token = await database_sync_to_async(issue_key)(space, [scopes.READ])
    comm = WebsocketCommunicator(
        application, f"/api/v1/realtime/spaces/{space.public_id}?token={token}"
    )
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == "connected"

    @database_sync_to_async
    def run() -> None:
        job, _ = services.create_job(space, {"name": "x"})
        (job,) = services.poll_jobs(space)
        services.complete_job(job, {"ok": True})

    await run()
    received = [await comm.receive_json_from(timeout=5) for _ in range(3)]
    assert [(e["type"], e["seq"]) for e in received] == [
        ("created", 1),
        ("delivered", 2),
        ("completed", 3),
    ]
    await comm.disconnect()
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_a_forked_or_dead_thread_is_started_again(monkeypatch):
    sequencer = streams.Sequencer()
    ran: list[set[int]] = []
    done = threading.Event()

    def fake_publish(space_id: int) -> int:
        ran.append(space_id)
        done.set()
        return 0

    monkeypatch.setattr(streams, "publish_space", fake_publish)
    monkeypatch.setattr(streams.connection, "close", lambda: None)
    sequencer.submit({7}, None)
    assert done.wait(5)
    first = sequencer._thread
    # As after a fork: the thread belongs to another pid, so a new one is started.
    sequencer._pid = -1
    done.clear()
    sequencer.submit({8}, None)
    assert done.wait(5)
    assert sequencer._thread is not first
    assert ran == [7, 8]
    assert sequencer.flush()


def test_an_unknown_sequencer_mode_fails_the_system_check(settings):
    from config.apps import check_operations_settings

    settings.STREAM_SEQUENCER = "threads"

    assert [e.id for e in check_operations_settings()] == ["operations.E003"]
