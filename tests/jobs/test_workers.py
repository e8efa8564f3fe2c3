"""The workers of a space: named by X-Worker-Id (or their key), last seen, jobs held, the last
hour's counts; and the API's operator endpoints with their scopes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from jobs import rollups, streams, workers
from jobs.models import Job, WorkerSighting
from spaces import scopes
from spaces.models import ApiKey
from tests.factories import issue_key

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_debounce():
    workers.forget()
    yield
    workers.forget()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def client_with(space, scope_list) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, scope_list)}")
    return client


@pytest.fixture
def reader(space):
    return client_with(space, [scopes.READ])


def poll_as(api, space, worker: str | None, **body):
    headers = {"HTTP_X_WORKER_ID": worker} if worker is not None else {}
    return api.post(
        f"/api/v1/spaces/{space.public_id}/jobs/poll", body or {}, format="json", **headers
    )


def test_a_poll_names_the_worker_on_the_jobs_it_takes(api, space, create, reader, clock):
    first, second = create(), create()
    response = poll_as(api, space, "host-1:4242", count=1)
    assert response.status_code == 200
    assert Job.objects.get(pk=first).worker_id == "host-1:4242"
    assert Job.objects.get(pk=second).worker_id is None
    body = reader.get(f"/api/v1/spaces/{space.public_id}/workers").json()
    (worker,) = body["workers"]
    assert worker["workerId"] == "host-1:4242"
    assert worker["holding"] == 1
    assert worker["heldJobIds"] == [first]
    assert worker["lastSeenAt"] == "2026-12-02T12:00:00Z"
    assert worker["key"]["name"] == "test key"


def test_a_worker_without_an_id_goes_by_its_key(api, space, create):
    job_id = create()
    poll_as(api, space, None)
    prefix = ApiKey.objects.get(name="test key").prefix
    assert Job.objects.get(pk=job_id).worker_id == f"key:{prefix}"
    assert WorkerSighting.objects.get(space=space).worker_id == f"key:{prefix}"


def test_a_claim_names_the_worker_too(api, space, create):
    job_id = create()
    response = api.post(f"/api/v1/jobs/{job_id}/claim", HTTP_X_WORKER_ID="pusher-7")
    assert response.status_code == 200
    assert Job.objects.get(pk=job_id).worker_id == "pusher-7"


@pytest.mark.parametrize("bad", ["x" * 201, "tab\there", "   "])
def test_a_malformed_worker_id_is_refused_with_400(api, space, create, bad):
    job_id = create()
    response = poll_as(api, space, bad)
    assert response.status_code == 400
    assert "X-Worker-Id" in response.json()["details"]
    assert Job.objects.get(pk=job_id).status == Job.Status.PENDING
    # and on the job calls
    poll_as(api, space, "ok")
    response = api.post(f"/api/v1/jobs/{job_id}/complete", {}, format="json", HTTP_X_WORKER_ID=bad)
    assert response.status_code == 400


def test_sightings_are_written_at_most_every_few_seconds(api, space, clock):
    poll_as(api, space, "w")
    clock.shift(workers.SIGHTING_EVERY - 1)
    poll_as(api, space, "w")
    assert WorkerSighting.objects.get(space=space).last_seen_at == T0
    clock.shift(1)
    poll_as(api, space, "w")
    assert WorkerSighting.objects.get(space=space).last_seen_at == T0.replace(
        second=int(workers.SIGHTING_EVERY)
    )


def test_a_polls_query_count_is_unchanged_once_the_sighting_is_recent(
    api, space, create, django_assert_max_num_queries
):
    create()
    poll_as(api, space, "w", count=1)  # writes the sighting
    create()
    with django_assert_max_num_queries(12):
        poll_as(api, space, "w", count=1)
    assert WorkerSighting.objects.count() == 1


def test_each_worker_counts_what_it_completed_and_failed_in_the_last_hour(
    api, space, create, reader, clock
):
    streams.publish_space(space.pk)
    rollups.roll_up()
    ids = [create() for _ in range(3)]
    poll_as(api, space, "w1", count=2)
    poll_as(api, space, "w2", count=1)
    api.post(f"/api/v1/jobs/{ids[0]}/complete", {}, format="json")
    api.post(f"/api/v1/jobs/{ids[1]}/fail", {"error": "nope", "retry": False}, format="json")
    api.post(f"/api/v1/jobs/{ids[2]}/complete", {}, format="json")
    streams.publish_space(space.pk)
    rollups.roll_up()
    found = {
        w["workerId"]: w
        for w in reader.get(f"/api/v1/spaces/{space.public_id}/workers").json()["workers"]
    }
    assert found["w1"]["lastHour"] == {"completed": 1, "failed": 1}
    assert found["w2"]["lastHour"] == {"completed": 1, "failed": 0}
    assert found["w1"]["holding"] == 0
    clock.shift(3600)
    found = {w.worker_id: w for w in rollups.workers(space)}
    assert (found["w1"].completed, found["w1"].failed) == (0, 0)


def test_pending_jobs_and_no_worker_seen_for_two_minutes_is_idle(api, space, create, reader, clock):
    url = f"/api/v1/spaces/{space.public_id}/workers"
    create()
    streams.publish_space(space.pk)
    space.refresh_from_db()
    assert reader.get(url).json()["idle"] is True  # never seen
    poll_as(api, space, "w", names=["nothing-of-this-name"])
    assert reader.get(url).json()["idle"] is False
    clock.shift(rollups.IDLE_AFTER.total_seconds())
    assert reader.get(url).json()["idle"] is False  # at the limit
    clock.shift(1)
    body = reader.get(url).json()
    assert body["idle"] is True
    assert body["workers"][0]["idle"] is True


@pytest.mark.parametrize("path", ["workers", "overview", "errors"])
def test_the_operator_reads_need_jobs_read(space, path):
    client = client_with(space, [scopes.CREATE])
    response = client.get(f"/api/v1/spaces/{space.public_id}/{path}")
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"


@pytest.mark.parametrize("path", ["workers", "overview", "errors"])
def test_another_spaces_operator_reads_are_not_found(cast, path):
    client = client_with(cast.space, [scopes.READ])
    response = client.get(f"/api/v1/spaces/{cast.other_space.public_id}/{path}")
    assert response.status_code == 404


def test_the_overview_endpoint_answers_per_name(api, space, create, reader, clock):
    streams.publish_space(space.pk)
    rollups.roll_up()
    create(name="a")
    streams.publish_space(space.pk)
    rollups.roll_up()
    clock.shift(90)
    (row,) = reader.get(f"/api/v1/spaces/{space.public_id}/overview").json()["names"]
    assert row["name"] == "a"
    assert row["pending"] == 1
    assert row["oldestPendingSeconds"] == 90.0
    assert row["lastHour"]["created"] == 1
    assert row["lastHour"]["failureRate"] is None
    assert row["limit"] == {"concurrency": None, "rate": None, "inFlight": 0}


# --- error groups ----------------------------------------------------------------------------


def fail_all(api, space, create, errors: list[str], retry=False) -> list[str]:
    ids = [create(name=f"n{i % 2}") for i in range(len(errors))]
    poll_as(api, space, "w", count=len(errors))
    for job_id, error in zip(ids, errors, strict=True):
        response = api.post(
            f"/api/v1/jobs/{job_id}/fail", {"error": error, "retry": retry}, format="json"
        )
        assert response.status_code == 200
    return ids


def test_failures_group_by_their_fingerprint(api, space, create, reader, clock):
    ids = fail_all(api, space, create, ["Timeout after 30s", "Timeout after 31s", "KeyError: 'x'"])
    groups = reader.get(f"/api/v1/spaces/{space.public_id}/errors").json()["groups"]
    assert sorted((g["error"], g["count"], g["dead"]) for g in groups) == [
        ("KeyError: '?'", 1, 1),
        ("Timeout after <n>s", 2, 2),
    ]
    timeout = next(g for g in groups if g["count"] == 2)
    assert timeout["names"] == ["n0", "n1"]
    assert timeout["sample"]["jobId"] in ids[:2]
    assert timeout["firstSeenAt"] == timeout["lastSeenAt"] == "2026-12-02T12:00:00Z"


def test_a_group_is_retried_and_killed_as_a_whole(api, space, create, reader):
    ids = fail_all(api, space, create, ["Timeout after 30s", "Timeout after 31s", "other"])
    fp = Job.objects.get(pk=ids[0]).error_fingerprint
    url = f"/api/v1/spaces/{space.public_id}/errors/{fp}"
    assert reader.post(f"{url}/retry").status_code == 403  # jobs:retry needed
    response = api.post(f"{url}/retry")
    assert response.status_code == 200
    assert response.json() == {"fingerprint": fp, "action": "retry", "count": 2}
    assert [Job.objects.get(pk=i).status for i in ids] == ["pending", "pending", "dead"]
    response = api.post(f"{url}/kill", {"reason": "bad deploy"}, format="json")
    assert response.json()["count"] == 2
    assert [Job.objects.get(pk=i).status for i in ids] == ["killed", "killed", "dead"]


@pytest.mark.parametrize("fp", ["nothex!", "0123456789abcdef"])
def test_an_unknown_group_is_not_found(api, space, fp):
    response = api.post(f"/api/v1/spaces/{space.public_id}/errors/{fp}/retry")
    assert response.status_code == 404


def test_another_spaces_group_is_not_found(api, cast, client_for):
    other = client_for(issue_key(cast.other_space))
    response = other.post(
        f"/api/v1/spaces/{cast.other_space.public_id}/jobs", {"name": "x"}, format="json"
    )
    job_id = response.json()["id"]
    other.post(f"/api/v1/spaces/{cast.other_space.public_id}/jobs/poll", {}, format="json")
    other.post(f"/api/v1/jobs/{job_id}/fail", {"error": "e", "retry": False}, format="json")
    fp = Job.objects.get(pk=job_id).error_fingerprint
    mine = client_for(issue_key(cast.space))
    response = mine.post(f"/api/v1/spaces/{cast.space.public_id}/errors/{fp}/retry")
    assert response.status_code == 404
    assert Job.objects.get(pk=job_id).status == "dead"


def test_a_kill_body_must_be_an_object(api, space, create):
    ids = fail_all(api, space, create, ["x"], retry=True)
    fp = Job.objects.get(pk=ids[0]).error_fingerprint
    response = api.post(f"/api/v1/spaces/{space.public_id}/errors/{fp}/kill", [1], format="json")
    assert response.status_code == 400
