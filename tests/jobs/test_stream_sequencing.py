"""Per-space seq numbering, status counts, stragglers and fan-out failure (jobs/streams.py)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from jobs import events, queries, services, streams
from jobs.models import Job, JobEvent
from spaces.models import Space
from tests import threads

pytestmark = pytest.mark.django_db(transaction=True)

ZERO = dict.fromkeys(queries.STATUSES, 0)


def counts_of(space: Space) -> dict[str, int]:
    space.refresh_from_db(fields=["status_counts", "event_seq"])
    return space.status_counts


def new_job(space: Space, name: str = "email.send") -> Job:
    job, _ = services.create_job(space, {"name": name, "payload": {"n": 1}})
    return job


def seqs(space: Space) -> list[tuple[str, int | None]]:
    return list(JobEvent.objects.filter(space=space).order_by("id").values_list("type", "seq"))


def test_it_numbers_events_after_commit_and_keeps_counts(space):
    first = new_job(space)
    new_job(space)
    (polled,) = services.poll_jobs(space, count=1)
    assert polled.pk == first.pk
    services.ack_job(polled)
    services.report_progress(polled, 50, "half way")
    services.complete_job(polled, {"ok": True})

    assert seqs(space) == [
        ("created", 1),
        ("created", 2),
        ("delivered", 3),
        ("started", 4),
        ("progress", 5),
        ("completed", 6),
    ]
    assert counts_of(space) == ZERO | {"pending": 1, "completed": 1}
    assert space.event_seq == 6


def test_counts_follow_retries_kills_and_redrives(space):
    job = new_job(space)
    services.poll_jobs(space)
    services.fail_job(job, "boom", retry=False)
    assert counts_of(space) == ZERO | {"dead": 1}
    services.retry_job(job)
    assert counts_of(space) == ZERO | {"pending": 1}
    services.kill_job(job, "no longer needed")
    assert counts_of(space) == ZERO | {"killed": 1}


def test_recount_space_agrees_with_the_sequencer_and_repairs_drift(space):
    for _ in range(3):
        new_job(space)
    services.poll_jobs(space, count=2)
    kept = counts_of(space)
    Space.objects.filter(pk=space.pk).update(status_counts={"pending": 99})

    assert streams.recount_space(space) == kept
    assert counts_of(space) == ZERO | {"pending": 1, "delivered": 2}


def test_recount_leaves_out_moves_the_sequencer_has_not_applied_yet(space, monkeypatch):
    new_job(space)
    # The next transition commits but is not numbered yet (its process is slow or died).
    monkeypatch.setattr(streams, "publish_space", lambda space_id: 0)
    services.poll_jobs(space)
    monkeypatch.undo()

    streams.recount_space(space)
    assert counts_of(space) == ZERO | {"pending": 1}
    streams.publish_space(space.pk)
    assert counts_of(space) == ZERO | {"delivered": 1}


def test_missing_counts_are_computed_on_first_use(space):
    new_job(space)
    Space.objects.filter(pk=space.pk).update(status_counts={})
    new_job(space)
    assert counts_of(space) == ZERO | {"pending": 2}


def test_adjust_counts_takes_deleted_jobs_out(space):
    for _ in range(2):
        new_job(space)
    streams.adjust_counts(space.pk, {"pending": -1})
    assert counts_of(space) == ZERO | {"pending": 1}
    streams.adjust_counts(space.pk, {"pending": -5})
    assert counts_of(space)["pending"] == 0


def test_a_stale_save_of_the_space_row_never_reuses_a_seq(space):
    stale = Space.objects.get(pk=space.pk)
    new_job(space)
    new_job(space)
    # A form that saves every field writes back event_seq=0 and empty counts.
    stale.name = "renamed"
    stale.save()
    new_job(space)

    assert [seq for _, seq in seqs(space)] == [1, 2, 3]
    assert counts_of(space) == ZERO | {"pending": 3}


def test_stragglers_are_numbered_by_the_catch_up_pass(space, monkeypatch):
    monkeypatch.setattr(streams, "publish_space", lambda space_id: 0)
    new_job(space)
    monkeypatch.undo()
    assert seqs(space) == [("created", None)]

    assert streams.sequence_stragglers(older_than_seconds=2) == 0  # too fresh to be a straggler
    with time_machine.travel(timezone.now() + timedelta(seconds=3)):
        assert streams.sequence_stragglers(older_than_seconds=2) == 1
    assert seqs(space) == [("created", 1)]
    assert counts_of(space) == ZERO | {"pending": 1}


def test_the_next_numbering_of_a_space_picks_up_earlier_stragglers_first(space, monkeypatch):
    monkeypatch.setattr(streams, "publish_space", lambda space_id: 0)
    lost = new_job(space, "lost")
    monkeypatch.undo()
    new_job(space, "next")

    assert list(
        JobEvent.objects.filter(space=space).order_by("seq").values_list("job__name", "seq")
    ) == [("lost", 1), ("next", 2)]
    assert lost.events.get().seq == 1


def test_fan_out_failure_never_reaches_the_caller(space, monkeypatch, caplog):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(streams, "get_channel_layer", lambda: BrokenLayer())
    streams.resume_fan_out()
    with caplog.at_level(logging.WARNING, logger="jobs.streams"):
        job = new_job(space)
    streams.resume_fan_out()

    assert job.events.get().seq == 1  # stored and numbered; clients replay it
    assert "stream fan-out failed" in caplog.text


def test_a_hanging_channel_layer_is_cut_off(space, monkeypatch, settings):
    import asyncio

    class HangingLayer:
        async def group_send(self, group, message):
            await asyncio.Event().wait()

    settings.STREAM_FANOUT_TIMEOUT = 0.01
    monkeypatch.setattr(streams, "get_channel_layer", lambda: HangingLayer())
    streams.resume_fan_out()
    assert streams.fan_out([("space.x", {"type": "stream.event"})]) is False
    # Paused after a failure: the next call does not wait again.
    assert streams.fan_out([("space.x", {"type": "stream.event"})]) is False
    streams.resume_fan_out()


def test_group_names_are_short_and_ascii():
    assert streams.space_group("01JABCDEFGHJKMNPQRSTVWXYZ0") == "space.01JABCDEFGHJKMNPQRSTVWXYZ0"
    assert streams.job_group("01JABCDEFGHJKMNPQRSTVWXYZ0") == "job.01JABCDEFGHJKMNPQRSTVWXYZ0"
    with pytest.raises(ValueError, match="group name"):
        streams.job_group("bad id/ü")
    with pytest.raises(ValueError, match="group name"):
        streams.job_group("x" * 100)


@pytest.mark.postgres
def test_seq_follows_commit_order_not_start_order(space):
    """The transaction that starts first but commits last gets the later seq, and a client that
    saw the earlier seq finds the late event when it replays from it."""
    # given: two jobs, so the two transitions lock different rows
    slow_job, fast_job = new_job(space, "slow"), new_job(space, "fast")
    start_seq = counts_of(space) and space.event_seq
    inserted = threading.Event()
    release = threading.Event()

    def slow_transition() -> None:
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=slow_job.pk)
            events.record(locked, "slow-step", {"n": 1})
            inserted.set()
            assert release.wait(10)

    # when: the slow transaction inserts its event first, the fast one commits first
    thread = threads.spawn(slow_transition)
    try:
        assert inserted.wait(10)
        with transaction.atomic():
            events.record(
                Job.objects.select_for_update().get(pk=fast_job.pk), "fast-step", {"n": 2}
            )
        seen_by_client = JobEvent.objects.get(type="fast-step").seq
    finally:
        release.set()
    thread.result(10)

    # then: the slow event was inserted first but numbered after the fast one
    slow_event = JobEvent.objects.get(type="slow-step")
    fast_event = JobEvent.objects.get(type="fast-step")
    assert slow_event.id < fast_event.id
    assert seen_by_client == start_seq + 1
    assert slow_event.seq == start_seq + 2
    # a client that saw the fast event's seq replays the slow one, and from before both gets
    # them in commit order
    replay = queries.stored_envelopes(
        JobEvent.objects.filter(space=space, seq__gt=seen_by_client), space.public_id
    )
    assert [e["type"] for e in replay] == ["slow-step"]
    replay = queries.stored_envelopes(
        JobEvent.objects.filter(space=space, seq__gt=start_seq), space.public_id
    )
    assert [e["type"] for e in replay] == ["fast-step", "slow-step"]


def test_the_scheduler_runs_the_straggler_pass():
    from jobs import maintenance

    assert maintenance.steps["jobs.sequence_stragglers"].func is streams.sequence_stragglers


def test_api_calls_succeed_when_redis_is_down(api, space, settings, caplog):
    # Nothing listens on port 1: every send to the layer fails.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    streams.resume_fan_out()
    with caplog.at_level(logging.WARNING, logger="jobs.streams"):
        response = api.post(
            f"/api/v1/spaces/{space.public_id}/jobs", {"name": "email.send"}, format="json"
        )
    streams.resume_fan_out()

    assert response.status_code == 201
    event = JobEvent.objects.get(job_id=response.json()["id"])
    assert (event.type, event.seq) == ("created", 1)  # stored and numbered for replay
    assert "stream fan-out failed" in caplog.text


@pytest.mark.redis
def test_plain_sync_processes_fan_out_through_one_long_lived_loop():
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("space.synctest", channel)
    streams.resume_fan_out()

    for n in range(2):
        assert streams.fan_out([("space.synctest", {"type": "stream.event", "n": n})])

    async def receive_two() -> list[int]:
        return [(await layer.receive(channel))["n"] for _ in range(2)]

    assert async_to_sync(receive_two)() == [0, 1]
    # Both sends ran on the same loop (one Redis connection pool, not one per commit).
    loop = streams._sender_loop()
    assert loop.is_running()
    assert streams._sender_loop() is loop
    async_to_sync(layer.group_discard)("space.synctest", channel)


@pytest.mark.postgres
def test_a_publisher_does_not_queue_behind_a_running_numbering(space):
    """While another numbering holds the space, a publisher leaves its events to the holder,
    whose next round (after its commit) numbers them."""
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with transaction.atomic():
            assert streams._try_numbering_lock(space.pk)
            holding.set()
            assert release.wait(10)

    thread = threads.spawn(holder)
    try:
        assert holding.wait(10)
        job = new_job(space)  # its publish finds the numbering lock taken and returns at once
        assert job.events.get().seq is None
    finally:
        release.set()
    thread.result(10)

    # The holder's next round (here: the next publish of the space) takes it, in order.
    new_job(space, "next")
    assert [seq for _, seq in seqs(space)] == [1, 2]
