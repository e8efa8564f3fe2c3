"""Concurrency per key: a job's concurrencyKey and the per-key limits of its name (jobs/flow.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from config.exceptions import http_status
from jobs import flow, services
from jobs.models import Job, KeyBucket, NameLimit
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make(space, name: str, keys: list[str | None], priority: int = 0) -> list[Job]:
    items = [{"name": name, "priority": priority, "concurrency_key": key} for key in keys]
    return [job for job, _ in services.create_jobs(space, items)]


def keys_of(jobs: list[Job]) -> list[str | None]:
    return [job.concurrency_key for job in jobs]


def finish(jobs: list[Job]) -> None:
    for job in jobs:
        services.ack_job(job)
        services.complete_job(job)


@pytest.fixture
def space(db):
    return SpaceFactory()


def test_a_key_limit_holds_for_each_key_apart(space):
    make(space, "sync", ["a", "a", "a", "b", "b", "c"])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    first = services.poll_jobs(space, count=10)
    assert sorted(keys_of(first)) == ["a", "b", "c"]
    assert services.poll_jobs(space, count=10) == []
    finish([j for j in first if j.concurrency_key == "a"])
    assert keys_of(services.poll_jobs(space, count=10)) == ["a"]


def test_a_key_limit_of_two_lets_two_of_a_key_run_at_once(space):
    make(space, "sync", ["a"] * 5)
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=2)
    assert len(services.poll_jobs(space, count=5)) == 2
    assert services.poll_jobs(space, count=5) == []


def test_a_full_key_with_older_jobs_does_not_hold_back_other_keys(space):
    # given: 30 jobs of key "big" at the head of the queue, one of them already running
    make(space, "sync", ["big"] * 30, priority=5)
    others = make(space, "sync", ["x", "y", "z"])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    held = services.poll_jobs(space, count=1)
    assert keys_of(held) == ["big"]
    # when: workers poll one job at a time
    polled = [job for _ in range(3) for job in services.poll_jobs(space, count=1)]
    # then: each poll reaches past the full key to the next key
    assert [j.id for j in polled] == [j.id for j in others]
    assert services.poll_jobs(space, count=1) == []


def test_a_poll_skips_the_jobs_of_keys_it_fills_itself(space):
    # Within one candidate batch: a, a, a, b: the second and third a are passed over.
    make(space, "sync", ["a", "a", "a", "b", "a", "c"])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    assert keys_of(services.poll_jobs(space, count=3)) == ["a", "b", "c"]


def test_jobs_without_a_key_are_bound_by_the_name_limits_only(space):
    make(space, "sync", [None, None, None, "a", "a"])
    flow.set_limit(space, "sync", concurrency=4, rate=None, key_concurrency=1)
    polled = services.poll_jobs(space, count=10)
    assert keys_of(polled) == [None, None, None, "a"]


def test_the_name_limit_still_caps_all_keys_together(space):
    make(space, "sync", ["a", "b", "c", "d"])
    flow.set_limit(space, "sync", concurrency=2, rate=None, key_concurrency=1)
    assert keys_of(services.poll_jobs(space, count=10)) == ["a", "b"]
    assert services.poll_jobs(space, count=10) == []


def test_a_full_key_never_holds_back_jobs_without_a_key(space):
    make(space, "sync", ["a", None, "a", None])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    assert keys_of(services.poll_jobs(space, count=1)) == ["a"]
    # The next poll leaves key "a" out of its query: rows with no key must stay in.
    assert keys_of(services.poll_jobs(space, count=10)) == [None, None]


def test_other_names_are_not_bound_by_a_key_limit(space):
    make(space, "sync", ["a", "a"])
    make(space, "mail", ["a", "a"])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    polled = services.poll_jobs(space, count=10)
    assert sorted((j.name, j.concurrency_key) for j in polled) == [
        ("mail", "a"),
        ("mail", "a"),
        ("sync", "a"),
    ]


def test_a_rate_per_key_refills_each_key_apart(space):
    make(space, "sms", ["a"] * 5 + ["b"] * 5)
    with time_machine.travel(T0, tick=False):
        flow.set_limit(space, "sms", concurrency=None, rate=None, key_rate=2)
        assert sorted(keys_of(services.poll_jobs(space, count=10))) == ["a", "a", "b", "b"]
        assert services.poll_jobs(space, count=10) == []
    with time_machine.travel(T0 + timedelta(milliseconds=500), tick=False):
        assert sorted(keys_of(services.poll_jobs(space, count=10))) == ["a", "b"]
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        # Idle time banks one second's worth per key, no more.
        assert sorted(keys_of(services.poll_jobs(space, count=10))) == ["a", "a", "b", "b"]


def test_buckets_full_again_are_deleted_and_a_missing_one_is_full(space):
    make(space, "sms", ["a", "b", "c"])
    limit = flow.set_limit(space, "sms", concurrency=None, rate=None, key_rate=1)
    with time_machine.travel(T0, tick=False):
        services.poll_jobs(space, count=1)
    assert KeyBucket.objects.filter(limit=limit).count() == 1
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        services.poll_jobs(space, count=1)
    # The first bucket (refilled 1 s ago at 1 per second) is full: its row is gone.
    assert list(KeyBucket.objects.filter(limit=limit).values_list("key", flat=True)) == ["b"]
    flow.set_limit(space, "sms", concurrency=None, rate=None, key_concurrency=3)
    assert not KeyBucket.objects.exists()


def test_claim_by_id_respects_the_key_limit(space):
    a1, a2, b1 = make(space, "sync", ["a", "a", "b"])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    services.claim_job(space, a1.id)
    with pytest.raises(services.JobError) as refused:
        services.claim_job(space, a2.id)
    assert http_status(refused.value) == 409
    assert refused.value.code == "limit_reached"
    assert "concurrencyKey" in refused.value.message
    assert Job.objects.get(pk=a2.id).status == Job.Status.PENDING
    assert services.claim_job(space, b1.id).status == Job.Status.DELIVERED
    # And the claimed job counts for the poll.
    assert services.poll_jobs(space, count=5) == []


@pytest.mark.postgres
def test_keys_cost_nothing_to_a_space_without_limits(space):
    make(space, "sync", ["a", "a", "b"])
    with CaptureQueriesContext(connection) as queried:
        polled = services.poll_jobs(space, count=5)
    assert keys_of(polled) == ["a", "a", "b"]
    # The one statement that claims (the space's paused flag may be read before it).
    assert len([q for q in queried if "jobs_job" in q["sql"]]) == 1


# --- API ------------------------------------------------------------------------------------


def client_for(space, scope_list=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, scope_list)}")
    return client


def jobs_url(space) -> str:
    return f"/api/v1/spaces/{space.public_id}/jobs"


def test_the_api_takes_a_concurrency_key_and_shows_it(space):
    client = client_for(space, [scopes.CREATE, scopes.READ])
    response = client.post(
        jobs_url(space), {"name": "sync", "concurrencyKey": "customer 42"}, format="json"
    )
    assert response.status_code == 201
    job_id = response.json()["id"]
    assert Job.objects.get(pk=job_id).concurrency_key == "customer 42"
    assert client.get(f"/api/v1/jobs/{job_id}").json()["concurrencyKey"] == "customer 42"
    plain = client.post(jobs_url(space), {"name": "sync"}, format="json").json()["id"]
    assert client.get(f"/api/v1/jobs/{plain}").json()["concurrencyKey"] is None


def test_an_array_create_takes_a_key_per_item(space):
    client = client_for(space, [scopes.CREATE])
    response = client.post(
        jobs_url(space),
        [{"name": "sync", "concurrencyKey": "a"}, {"name": "sync", "concurrencyKey": "b"}],
        format="json",
    )
    assert response.status_code == 201
    assert sorted(Job.objects.values_list("concurrency_key", flat=True)) == ["a", "b"]


@pytest.mark.parametrize(
    "key",
    ["", "k" * 201, 42, ["a"], {"a": 1}, "tab\there", "line\nbreak", "bell\x07"],
)
def test_the_api_refuses_a_bad_concurrency_key_with_400(space, key):
    client = client_for(space, [scopes.CREATE])
    response = client.post(jobs_url(space), {"name": "sync", "concurrencyKey": key}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert "concurrencyKey" in response.json()["details"]
    assert not Job.objects.exists()


def test_a_key_of_200_characters_is_taken(space):
    client = client_for(space, [scopes.CREATE])
    response = client.post(
        jobs_url(space), {"name": "sync", "concurrencyKey": "k" * 200}, format="json"
    )
    assert response.status_code == 201


def test_the_limits_api_sets_and_lists_per_key_limits(space):
    client = client_for(space, [scopes.READ, scopes.LIMITS_WRITE])
    url = f"/api/v1/spaces/{space.public_id}/limits"
    response = client.put(f"{url}/sync", {"keyConcurrency": 1, "keyRate": 0.5}, format="json")
    assert response.status_code == 200
    expected = {
        "name": "sync",
        "concurrency": None,
        "rate": None,
        "keyConcurrency": 1,
        "keyRate": 0.5,
    }
    assert response.json() == expected
    assert client.get(url).json() == {"limits": [expected]}
    stored = NameLimit.objects.get(space=space, name="sync")
    assert (stored.key_concurrency, stored.key_rate) == (1, 0.5)
    # A PUT replaces the whole limit: the per-key values go when not sent.
    client.put(f"{url}/sync", {"concurrency": 3}, format="json")
    stored.refresh_from_db()
    assert (stored.concurrency, stored.key_concurrency, stored.key_rate) == (3, None, None)


@pytest.mark.parametrize(
    "body",
    [
        {"keyConcurrency": 0},
        {"keyConcurrency": 1.5},
        {"keyConcurrency": "x"},
        {"keyRate": 0},
        {"keyRate": 100001},
        {"keyConcurrency": None, "keyRate": None},
    ],
)
def test_the_limits_api_refuses_bad_per_key_values_with_400(space, body):
    client = client_for(space, [scopes.LIMITS_WRITE])
    response = client.put(f"/api/v1/spaces/{space.public_id}/limits/sync", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert not NameLimit.objects.exists()


def test_a_keyed_poll_costs_a_fixed_number_of_statements(space):
    make(space, "sync", [f"k{i % 4}" for i in range(20)])
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1, key_rate=5)
    services.poll_jobs(space, count=1)  # one key in flight, one bucket written
    with CaptureQueriesContext(connection) as queried:
        polled = services.poll_jobs(space, count=5)
    assert sorted(keys_of(polled)) == ["k1", "k2", "k3"]
    statements = [q for q in queried if "SAVEPOINT" not in q["sql"]]
    # paused?, limits locked, keys in flight, buckets, candidates, the claims (one UPDATE per
    # job on SQLite, one for all on PostgreSQL), bucket upsert, stale buckets deleted, the jobs
    # read, their events; on PostgreSQL first the one-statement poll, which finds the limits.
    if connection.vendor == "postgresql":
        assert len(statements) == 9 + 1 + 1
    else:
        assert len(statements) == 9 + len(polled)


@pytest.mark.parametrize("ack", [False, True])
def test_a_keyed_poll_writes_what_a_plain_poll_writes(space, ack):
    items = [{"name": "sync", "concurrency_key": k, "timeout_seconds": 60} for k in "abc"]
    services.create_jobs(space, items)
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    with time_machine.travel(T0, tick=False):
        polled = services.poll_jobs(space, count=3, ack=ack, worker_id="w-1")
    stored = list(Job.objects.filter(space=space))
    assert len(polled) == len(stored) == 3
    assert len({job.claim_id for job in stored}) == 3
    assert {job.claim_id for job in polled} == {job.claim_id for job in stored}
    for job in stored:
        assert job.worker_id == "w-1"
        assert job.delivered_at == T0
        if ack:
            assert job.status == Job.Status.RUNNING
            assert (job.started_at, job.delivery_count) == (T0, 0)
            assert job.execution_deadline == T0 + timedelta(seconds=60)
            assert job.delivery_deadline is None
        else:
            assert job.status == Job.Status.DELIVERED
            assert job.delivery_count == 1
            assert job.delivery_deadline == T0 + timedelta(seconds=60)
            assert job.execution_deadline is None
