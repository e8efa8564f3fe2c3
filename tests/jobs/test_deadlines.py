"""Deadlines, backoff and scheduled jobs, at their exact boundaries (time_machine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import services
from jobs.models import Job, JobEvent

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def make(space, **data) -> Job:
    job, _ = services.create_job(space, {"name": "t", **data})
    return job


def test_a_scheduled_job_becomes_pending_when_its_time_is_reached(space, clock):
    job = make(space, scheduled_for=T0 + timedelta(seconds=60))
    assert job.status == "scheduled"
    services.sweep(now=T0 + timedelta(seconds=59))
    job.refresh_from_db()
    assert job.status == "scheduled"
    assert services.poll_jobs(space) == []
    moved = services.sweep(now=T0 + timedelta(seconds=60))
    assert moved["scheduled"] == 1
    job.refresh_from_db()
    assert job.status == "pending"
    event = job.events.last()
    assert (event.type, event.previous_status, event.data) == (
        "pending",
        "scheduled",
        {"reason": "scheduled"},
    )


def test_delivery_timeout_returns_the_job_without_using_an_attempt(space, clock):
    job = make(space, timeout_seconds=30)
    services.poll_jobs(space)
    services.sweep(now=T0 + timedelta(seconds=30))  # at the deadline: still held
    job.refresh_from_db()
    assert job.status == "delivered"
    services.sweep(now=T0 + timedelta(seconds=31))  # one second past
    job.refresh_from_db()
    assert (job.status, job.attempt_number, job.claim_id) == ("pending", 1, None)
    event = job.events.last()
    assert (event.type, event.data) == ("pending", {"reason": "delivery_timeout"})


def test_execution_timeout_counts_as_a_failure(space, clock):
    job = make(
        space, timeout_seconds=10, backoff={"type": "fixed", "delaySeconds": 5, "jitter": False}
    )
    services.poll_jobs(space)
    services.ack_job(job)
    services.sweep(now=T0 + timedelta(seconds=10))
    job.refresh_from_db()
    assert job.status == "running"
    clock.move_to(T0 + timedelta(seconds=11))
    services.sweep()
    job.refresh_from_db()
    assert (job.status, job.attempt_number, job.last_error) == ("scheduled", 2, "timeout")
    assert job.available_at == T0 + timedelta(seconds=16)
    retried = job.events.get(type="retried")
    assert retried.data["error"] == "timeout" and retried.previous_status == "running"


def test_execution_timeout_on_the_last_attempt_is_dead(space, clock):
    job = make(space, timeout_seconds=10, max_retries=0)
    services.poll_jobs(space)
    services.ack_job(job)
    services.sweep(now=T0 + timedelta(seconds=11))
    job.refresh_from_db()
    assert (job.status, job.last_error) == ("dead", "timeout")
    assert job.events.get(type="dead").data == {"error": "timeout"}


def test_progress_resets_and_keepalive_extends_the_execution_deadline(space, clock):
    job = make(space, timeout_seconds=10)
    services.poll_jobs(space)
    services.ack_job(job)
    clock.move_to(T0 + timedelta(seconds=8))
    services.report_progress(job, 50, "half")
    job.refresh_from_db()
    assert job.execution_deadline == T0 + timedelta(seconds=18)
    services.keepalive_job(job, 100)
    job.refresh_from_db()
    assert job.execution_deadline == T0 + timedelta(seconds=108)
    services.sweep(now=T0 + timedelta(seconds=108))
    job.refresh_from_db()
    assert job.status == "running"
    services.sweep(now=T0 + timedelta(seconds=109))
    job.refresh_from_db()
    assert job.status == "scheduled"


def test_exponential_backoff_doubles_and_is_capped(space, clock):
    job = make(
        space,
        max_retries=10,
        backoff={"type": "exponential", "delaySeconds": 2, "maxDelaySeconds": 10, "jitter": False},
    )
    delays = []
    for _ in range(4):
        clock.move_to(job.available_at)
        services.sweep()
        [claimed] = services.poll_jobs(space)
        services.fail_job(claimed, "boom")
        claimed.refresh_from_db()
        delays.append((claimed.available_at - job.available_at).total_seconds())
        job = claimed
    assert delays == [2, 4, 8, 10]


def test_the_default_backoff_has_jitter_within_bounds(space):
    job = make(space)
    for attempt in range(1, 6):
        delay = services.backoff_delay(job, attempt)
        full = min(2 ** (attempt - 1), 3600)
        assert full / 2 <= delay <= full


def test_a_retried_job_is_not_polled_before_its_backoff(space, clock):
    job = make(space, backoff={"type": "fixed", "delaySeconds": 30, "jitter": False})
    services.poll_jobs(space)
    services.fail_job(job, "boom")
    services.sweep(now=T0 + timedelta(seconds=29))
    assert services.poll_jobs(space) == []
    clock.move_to(T0 + timedelta(seconds=30))
    services.sweep()
    [again] = services.poll_jobs(space)
    assert again.id == job.id and again.attempt_number == 2


def test_a_job_never_acked_goes_dead_after_max_retries_plus_three_deliveries(space, clock):
    job = make(space, max_retries=1, timeout_seconds=10)
    now = T0
    for handout in range(1, 6):
        clock.move_to(now)
        assert [j.id for j in services.poll_jobs(space)] == [job.id], handout
        now += timedelta(seconds=11)
        services.sweep(now=now)
        job.refresh_from_db()
        if handout <= 4:
            assert job.status == "pending", handout
    assert (job.status, job.last_error) == ("dead", "delivery attempts exhausted")


def test_an_ack_resets_the_delivery_count(space, clock):
    job = make(space, max_retries=0, timeout_seconds=10)
    for _ in range(3):
        services.poll_jobs(space)
        services.sweep(now=T0 + timedelta(seconds=11))
    job.refresh_from_db()
    assert (job.status, job.delivery_count) == ("pending", 3)
    [job] = services.poll_jobs(space)
    services.ack_job(job)
    job.refresh_from_db()
    assert job.delivery_count == 0


def test_two_sweeps_never_double_a_transition(space, clock):
    job = make(space, scheduled_for=T0 + timedelta(seconds=5))
    later = T0 + timedelta(seconds=6)
    assert services.sweep(now=later)["scheduled"] == 1
    assert services.sweep(now=later)["scheduled"] == 0
    assert JobEvent.objects.filter(job=job, type="pending").count() == 1


def test_the_sweeper_works_in_batches(space, clock, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 3)
    for _ in range(7):
        make(space, scheduled_for=T0 + timedelta(seconds=1))
    assert services.sweep(now=T0 + timedelta(seconds=2))["scheduled"] == 7
    assert Job.objects.filter(status="pending").count() == 7


def test_scheduled_for_in_the_past_is_rejected(api, space, clock):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs",
        {"name": "x", "scheduledFor": (T0 - timedelta(seconds=1)).isoformat()},
        format="json",
    )
    assert response.status_code == 400
    assert "scheduledFor" in response.json()["details"]
    assert not Job.objects.exists()


def test_scheduled_for_through_the_api(api, space, clock):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs",
        {"name": "x", "scheduledFor": "2030-01-01T12:05:00Z"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "scheduled"
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "scheduled"
    assert job.available_at == job.scheduled_for == T0 + timedelta(minutes=5)
    assert services.poll_jobs(space) == []  # not handed out before its time


def test_a_worker_whose_lease_ran_out_cannot_touch_the_next_attempt(space, clock):
    job = make(space, timeout_seconds=10)
    [first] = services.poll_jobs(space)
    old_claim = first.claim_id
    services.sweep(now=T0 + timedelta(seconds=11))
    [second] = services.poll_jobs(space)
    assert second.id == job.id and second.claim_id != old_claim
    for call in (
        lambda: services.ack_job(job, claim_id=old_claim),
        lambda: services.complete_job(job, {"late": True}, claim_id=old_claim),
        lambda: services.fail_job(job, "late", claim_id=old_claim),
        lambda: services.keepalive_job(job, claim_id=old_claim),
    ):
        with pytest.raises(services.JobError) as caught:
            call()
        assert caught.value.code == "stale_claim"
    services.complete_job(job, {"ok": True}, claim_id=second.claim_id)
    job.refresh_from_db()
    assert (job.status, job.result) == ("completed", {"ok": True})
