from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connections
from rest_framework.test import APIClient

from jobs import flow, services
from jobs.models import Job, NameLimit
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make(space, name: str, n: int, priority: int = 0) -> list[Job]:
    return [
        job for job, _ in services.create_jobs(space, [{"name": name, "priority": priority}] * n)
    ]


@pytest.fixture
def space(db):
    return SpaceFactory()


def test_a_concurrency_limit_caps_jobs_in_flight(space):
    make(space, "email", 10)
    flow.set_limit(space, "email", concurrency=3, rate=None)
    first = services.poll_jobs(space, count=10)
    assert len(first) == 3
    assert services.poll_jobs(space, count=10) == []
    services.ack_job(first[0])
    services.complete_job(first[0])
    assert len(services.poll_jobs(space, count=10)) == 1
    assert Job.objects.filter(space=space, status__in=flow.IN_FLIGHT).count() == 3


def test_a_flood_of_a_limited_name_does_not_hide_the_jobs_behind_it(space):
    make(space, "email", 20, priority=5)
    others = make(space, "report", 5)
    flow.set_limit(space, "email", concurrency=1, rate=None)
    polled = services.poll_jobs(space, count=6)
    assert [j.name for j in polled].count("email") == 1
    assert {j.id for j in polled if j.name == "report"} == {j.id for j in others}


def test_a_name_filter_only_locks_its_own_limits(space):
    make(space, "email", 3)
    make(space, "report", 3)
    flow.set_limit(space, "email", concurrency=1, rate=None)
    assert len(services.poll_jobs(space, count=5, names=["report"])) == 3
    assert len(services.poll_jobs(space, count=5, names=["email"])) == 1


def test_a_rate_limit_hands_out_at_most_its_rate_per_second(space):
    make(space, "sms", 20)
    with time_machine.travel(T0, tick=False):
        flow.set_limit(space, "sms", concurrency=None, rate=2)
        assert len(services.poll_jobs(space, count=10)) == 2
        assert services.poll_jobs(space, count=10) == []
    with time_machine.travel(T0 + timedelta(milliseconds=500), tick=False):
        assert len(services.poll_jobs(space, count=10)) == 1
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        # Idle time does not bank more than one second's worth.
        assert len(services.poll_jobs(space, count=10)) == 2


def test_claim_by_id_respects_the_limit(space):
    jobs = make(space, "email", 2)
    flow.set_limit(space, "email", concurrency=1, rate=None)
    services.claim_job(space, jobs[0].id)
    with pytest.raises(services.JobError) as refused:
        services.claim_job(space, jobs[1].id)
    assert refused.value.status_code == 409
    assert refused.value.code == "limit_reached"
    assert Job.objects.get(pk=jobs[1].id).status == Job.Status.PENDING


def test_removing_a_limit_frees_the_name(space):
    make(space, "email", 4)
    flow.set_limit(space, "email", concurrency=1, rate=None)
    assert len(services.poll_jobs(space, count=4)) == 1
    flow.set_limit(space, "email", concurrency=None, rate=None)
    assert not NameLimit.objects.exists()
    assert len(services.poll_jobs(space, count=4)) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_pollers_never_exceed_the_limit():
    space = SpaceFactory()
    make(space, "email", 200)
    make(space, "free", 100)
    flow.set_limit(space, "email", concurrency=5, rate=None)
    barrier = threading.Barrier(16)
    got: list[Job] = []
    lock = threading.Lock()

    def poller() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                jobs = services.poll_jobs(space, count=7)
                with lock:
                    got.extend(jobs)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [j.name for j in got]
    assert names.count("email") == 5  # held, never completed: the limit is exact
    assert names.count("free") == 100
    assert len({j.id for j in got}) == len(got)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_while_workers_complete_and_poll_again():
    space = SpaceFactory()
    make(space, "email", 120)
    flow.set_limit(space, "email", concurrency=4, rate=None)
    in_flight, peak, done = [0], [0], [0]
    lock = threading.Lock()

    def worker() -> None:
        try:
            while True:
                jobs = services.poll_jobs(space, count=3, ack=True)
                if not jobs:
                    with lock:
                        if done[0] >= 120:
                            return
                    continue
                with lock:
                    in_flight[0] += len(jobs)
                    peak[0] = max(peak[0], in_flight[0])
                for job in jobs:
                    with lock:
                        in_flight[0] -= 1
                        done[0] += 1
                    services.complete_job(job)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert done[0] == 120
    assert peak[0] <= 4
    assert Job.objects.filter(space=space, status=Job.Status.COMPLETED).count() == 120


# --- API ------------------------------------------------------------------------------------


def client_for(space, scope_list) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, scope_list)}")
    return client


def test_the_api_sets_lists_and_removes_limits(space):
    client = client_for(space, [scopes.READ, scopes.LIMITS_WRITE])
    url = f"/api/v1/spaces/{space.public_id}/limits"
    response = client.put(f"{url}/email", {"concurrency": 2, "rate": 5}, format="json")
    assert response.status_code == 200
    assert response.json() == {"name": "email", "concurrency": 2, "rate": 5.0}
    assert client.get(url).json() == {"limits": [{"name": "email", "concurrency": 2, "rate": 5.0}]}
    assert client.delete(f"{url}/email").status_code == 204
    assert client.delete(f"{url}/email").status_code == 404
    assert client.get(url).json() == {"limits": []}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"concurrency": 0},
        {"rate": -1},
        {"concurrency": "x"},
        {"concurrency": None, "rate": None},
    ],
)
def test_bad_limits_are_400(space, body):
    client = client_for(space, [scopes.LIMITS_WRITE])
    response = client.put(f"/api/v1/spaces/{space.public_id}/limits/email", body, format="json")
    assert response.status_code == 400
    assert not NameLimit.objects.exists()


def test_changing_limits_needs_its_scope_and_the_right_space(space):
    reader = client_for(space, [scopes.READ])
    response = reader.put(
        f"/api/v1/spaces/{space.public_id}/limits/email", {"concurrency": 1}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"] == "Missing required scope: limits:write"
    other = SpaceFactory()
    writer = client_for(space, [scopes.LIMITS_WRITE, scopes.READ])
    assert (
        writer.put(
            f"/api/v1/spaces/{other.public_id}/limits/email", {"concurrency": 1}, format="json"
        ).status_code
        == 404
    )
    assert writer.get(f"/api/v1/spaces/{other.public_id}/limits").status_code == 404
    assert not NameLimit.objects.exists()
