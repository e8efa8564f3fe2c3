from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from jobs.models import Job, JobEvent
from tests.jobs.conftest import status_of


def test_it_creates_a_job_with_defaults(api, space):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs",
        {"name": "email.send", "payload": {"to": "a@example.com"}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "spaceId", "status", "realtimeUrl"}
    assert body["spaceId"] == space.public_id
    assert body["status"] == "pending"
    assert body["realtimeUrl"] == f"ws://localhost:8000/api/v1/realtime/{body['id']}"
    job = Job.objects.get(pk=body["id"])
    assert (job.max_retries, job.timeout_seconds, job.priority, job.attempt_number) == (
        3,
        300,
        0,
        1,
    )
    assert list(job.events.values_list("type", "status", "previous_status")) == [
        ("created", "pending", None)
    ]


def test_a_worker_polls_acks_and_completes(api, create, poll):
    job_id = create()
    jobs = poll(count=5)
    assert [j["id"] for j in jobs] == [job_id]
    descriptor = jobs[0]
    assert {
        "id",
        "name",
        "payload",
        "timeoutSeconds",
        "maxRetries",
        "attemptNumber",
        "createdAt",
        "claimId",
    } <= set(descriptor)
    assert descriptor["attemptNumber"] == 0  # the first attempt, counted from 0
    assert status_of(job_id) == "delivered"
    assert poll() == []

    headers = {"HTTP_X_CLAIM_ID": descriptor["claimId"]}
    assert api.post(f"/api/v1/jobs/{job_id}/ack", **headers).status_code == 200
    assert status_of(job_id) == "running"
    response = api.post(
        f"/api/v1/jobs/{job_id}/complete", {"result": {"sent": True}}, format="json", **headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    job = Job.objects.get(pk=job_id)
    assert job.result == {"sent": True}
    assert job.completed_at is not None
    types = list(JobEvent.objects.filter(job_id=job_id).values_list("type", flat=True))
    assert types == ["created", "delivered", "started", "completed"]


def test_the_readme_tour_works_without_a_body_on_ack(api, create, poll):
    job_id = create()
    poll(count=1)
    assert api.post(f"/api/v1/jobs/{job_id}/ack").status_code == 200
    assert status_of(job_id) == "running"
    response = api.post(
        f"/api/v1/jobs/{job_id}/complete", {"result": {"sent": True}}, format="json"
    )
    assert response.status_code == 200
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.result) == ("completed", {"sent": True})
    assert job.started_at is not None and job.completed_at is not None
    assert list(job.events.values_list("type", flat=True)) == [
        "created",
        "delivered",
        "started",
        "completed",
    ]


def test_complete_on_a_delivered_job_implies_the_ack(api, create, poll):
    job_id = create()
    poll()
    assert api.post(f"/api/v1/jobs/{job_id}/complete", {}, format="json").status_code == 200
    job = Job.objects.get(pk=job_id)
    assert job.status == "completed" and job.started_at is not None
    completed = job.events.get(type="completed")
    assert completed.previous_status == "delivered"
    assert not job.events.filter(type="started").exists()


def test_fail_with_attempts_left_schedules_a_retry_then_dies(api, create, poll):
    job_id = create(maxRetries=1, backoff={"type": "fixed", "delaySeconds": 0, "jitter": False})
    poll()
    response = api.post(f"/api/v1/jobs/{job_id}/fail", {"error": "boom"}, format="json")
    assert response.status_code == 200
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempt_number, job.last_error) == ("pending", 2, "boom")
    retried = job.events.get(type="retried")
    # The next attempt, counted from 0 as the API speaks (the column counts from 1).
    assert retried.data["attemptNumber"] == 1 and retried.data["error"] == "boom"
    assert retried.previous_status == "delivered"
    poll()
    api.post(f"/api/v1/jobs/{job_id}/fail", {"error": "boom again"}, format="json")
    job.refresh_from_db()
    assert (job.status, job.attempt_number) == ("dead", 2)
    assert job.events.get(type="dead").data == {"error": "boom again"}


def test_fail_with_retry_false_is_dead_at_once(api, create, poll):
    job_id = create(maxRetries=5)
    poll()
    response = api.post(
        f"/api/v1/jobs/{job_id}/fail", {"error": "fatal", "retry": False}, format="json"
    )
    assert response.status_code == 200
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempt_number, job.last_error) == ("dead", 1, "fatal")
    assert job.completed_at is not None
    assert not job.events.filter(type="retried").exists()
    assert job.events.get(type="dead").data == {"error": "fatal"}


def test_kill_and_retry(api, create):
    job_id = create()
    response = api.post(
        f"/api/v1/jobs/{job_id}/kill", {"reason": "no longer needed"}, format="json"
    )
    assert response.status_code == 200
    assert status_of(job_id) == "killed"
    assert JobEvent.objects.get(job_id=job_id, type="killed").data == {"reason": "no longer needed"}
    response = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempt_number) == ("pending", 1)
    event = JobEvent.objects.filter(job_id=job_id).last()
    assert (event.type, event.status, event.previous_status, event.data) == (
        "pending",
        "pending",
        "killed",
        {"reason": "retry"},
    )


def test_every_worker_call_on_a_killed_job_answers_job_killed(api, create, poll):
    job_id = create()
    claim = poll()[0]["claimId"]
    api.post(f"/api/v1/jobs/{job_id}/kill", {}, format="json")
    calls = [
        ("ack", {}),
        ("progress", {"percent": 5, "message": "x"}),
        ("checkpoint", {"step": 1}),
        ("event", {"type": "custom", "data": {}}),
        ("keepalive", {}),
        ("logs", [{"level": "info", "message": "x"}]),
        ("complete", {}),
        ("fail", {"error": "x"}),
        ("kill", {}),
    ]
    for verb, body in calls:
        response = api.post(
            f"/api/v1/jobs/{job_id}/{verb}", body, format="json", HTTP_X_CLAIM_ID=claim
        )
        assert response.status_code == 409, verb
        assert response.json()["code"] == "job_killed", verb
    assert status_of(job_id) == "killed"


def test_a_stale_claim_id_changes_nothing(api, create, poll):
    job_id = create()
    poll()
    for verb, body in [("ack", {}), ("complete", {"result": 1}), ("fail", {"error": "x"})]:
        response = api.post(
            f"/api/v1/jobs/{job_id}/{verb}",
            body,
            format="json",
            HTTP_X_CLAIM_ID="01STALESTALESTALESTALESTAL",
        )
        assert response.status_code == 409
        assert response.json()["code"] == "stale_claim"
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.result, job.last_error) == ("delivered", None, "")
    assert list(job.events.values_list("type", flat=True)) == ["created", "delivered"]


def test_wrong_status_transitions_answer_409(api, create, poll):
    job_id = create()
    for verb, body in [
        ("ack", {}),
        ("progress", {"percent": 1, "message": "m"}),
        ("checkpoint", {"a": 1}),
        ("complete", {}),
        ("fail", {"error": "x"}),
        ("retry", {}),
    ]:
        response = api.post(f"/api/v1/jobs/{job_id}/{verb}", body, format="json")
        assert response.status_code == 409, verb
        assert response.json()["code"] == "invalid_transition"
    # None of them changed the pending job or wrote an event.
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempt_number, job.progress) == ("pending", 1, None)
    assert list(job.events.values_list("type", flat=True)) == ["created"]
    poll()
    assert api.post(f"/api/v1/jobs/{job_id}/claim").status_code == 409
    assert status_of(job_id) == "delivered"
    assert api.post(f"/api/v1/jobs/{job_id}/complete", {}, format="json").status_code == 200
    for verb in ("kill", "complete", "ack"):
        assert api.post(f"/api/v1/jobs/{job_id}/{verb}", {}, format="json").status_code == 409
    job = Job.objects.get(pk=job_id)
    assert job.status == "completed"
    assert list(job.events.values_list("type", flat=True)) == ["created", "delivered", "completed"]


def test_claim_by_id(api, create):
    job_id = create()
    response = api.post(f"/api/v1/jobs/{job_id}/claim")
    assert response.status_code == 200
    assert response.json()["job"]["id"] == job_id
    assert response.json()["job"]["claimId"]
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.claim_id) == ("delivered", response.json()["job"]["claimId"])
    assert job.delivery_deadline is not None
    assert api.post(f"/api/v1/jobs/{job_id}/claim").json()["code"] == "invalid_transition"


def test_progress_is_stored_and_readable(api, create, poll):
    job_id = create()
    poll()
    api.post(f"/api/v1/jobs/{job_id}/ack")
    body = {"percent": 40, "message": "resizing", "subProgress": {"upload": {"percent": 100}}}
    response = api.post(f"/api/v1/jobs/{job_id}/progress", body, format="json")
    assert response.status_code == 200
    got = api.get(f"/api/v1/jobs/{job_id}/progress").json()
    assert got["progress"]["percent"] == 40
    assert got["progress"]["message"] == "resizing"
    assert got["progress"]["subProgress"] == {"upload": {"percent": 100}}
    event = JobEvent.objects.get(job_id=job_id, type="progress")
    assert event.data == body


def test_checkpoint_custom_event_and_keepalive(api, create, poll):
    job_id = create()
    poll()
    api.post(f"/api/v1/jobs/{job_id}/ack")
    assert (
        api.post(f"/api/v1/jobs/{job_id}/checkpoint", {"page": 7}, format="json").status_code == 200
    )
    assert (
        api.post(
            f"/api/v1/jobs/{job_id}/event", {"type": "thumbnail", "data": {"n": 1}}, format="json"
        ).status_code
        == 200
    )
    before = timezone.now()
    response = api.post(f"/api/v1/jobs/{job_id}/keepalive", {"extendSeconds": 900}, format="json")
    assert response.status_code == 200
    job = Job.objects.get(pk=job_id)
    # The running job's deadline moved to 900 s from the call (its timeout is 300 s).
    assert before + timedelta(seconds=900) <= job.execution_deadline
    assert job.execution_deadline <= timezone.now() + timedelta(seconds=900)
    assert job.status == "running"
    types = list(JobEvent.objects.filter(job_id=job_id).values_list("type", "data"))
    assert ("checkpoint", {"page": 7}) in types
    assert ("thumbnail", {"n": 1}) in types
    # A worker cannot forge lifecycle events.
    response = api.post(f"/api/v1/jobs/{job_id}/event", {"type": "completed"}, format="json")
    assert response.status_code == 400
    assert not JobEvent.objects.filter(job_id=job_id, type="completed").exists()
    assert status_of(job_id) == "running"


def test_get_job_returns_fields_and_events(api, create, poll):
    job_id = create(priority=5, idempotencyKey="k1", callbackUrl="https://example.com/hook")
    body = api.get(f"/api/v1/jobs/{job_id}").json()
    for field in [
        "id",
        "spaceId",
        "name",
        "payload",
        "status",
        "priority",
        "maxRetries",
        "attemptNumber",
        "timeoutSeconds",
        "scheduledFor",
        "backoff",
        "idempotencyKey",
        "callbackUrl",
        "callbackHeaders",
        "result",
        "error",
        "progress",
        "deliveredAt",
        "startedAt",
        "completedAt",
        "createdAt",
        "updatedAt",
    ]:
        assert field in body, field
    assert "claimId" not in body
    assert body["priority"] == 5 and body["idempotencyKey"] == "k1"
    assert [e["type"] for e in body["events"]] == ["created"]


def test_priority_then_age_orders_the_queue(api, create, poll):
    low = create(name="a")
    high = create(name="b", priority=10)
    low2 = create(name="c")
    assert [j["id"] for j in poll(count=3)] == [high, low, low2]


def test_poll_filters_by_name_with_precedence(api, create, poll):
    a = create(name="a")
    b = create(name="b")
    assert [j["id"] for j in poll(type="b", names=["a"])] == [b]
    assert [j["id"] for j in poll(names=["a", "x"])] == [a]


def test_poll_on_a_paused_space_returns_nothing_and_claim_409(api, space, create, poll):
    from django.utils import timezone

    job_id = create()
    space.paused_at = timezone.now()
    space.save()
    assert poll() == []
    response = api.post(f"/api/v1/jobs/{job_id}/claim")
    assert response.status_code == 409 and response.json()["code"] == "space_paused"
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.claim_id, job.delivery_count) == ("pending", None, 0)


def test_poll_with_ack_starts_the_job(api, create, poll):
    job_id = create()
    jobs = poll(ack=True)
    assert jobs[0]["status"] == "running"
    job = Job.objects.get(pk=job_id)
    assert job.status == "running" and job.execution_deadline is not None
    assert list(job.events.values_list("type", "previous_status")) == [
        ("created", None),
        ("started", "pending"),
    ]
