from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from config.exceptions import http_status
from jobs import flow, services
from jobs.models import Job, NameLimit
from spaces import scopes
from tests import threads
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
    assert http_status(refused.value) == 409
    assert refused.value.code == "limit_reached"
    assert Job.objects.get(pk=jobs[1].id).status == Job.Status.PENDING


def test_removing_a_limit_frees_the_name(space):
    make(space, "email", 4)
    flow.set_limit(space, "email", concurrency=1, rate=None)
    assert len(services.poll_jobs(space, count=4)) == 1
    flow.set_limit(space, "email", concurrency=None, rate=None)
    assert not NameLimit.objects.exists()
    assert len(services.poll_jobs(space, count=4)) == 3


def in_flight_in_db(space, name: str) -> int:
    """Jobs of NAME the database holds as delivered or running: what the limit is about."""
    return Job.objects.filter(space=space, name=name, status__in=flow.IN_FLIGHT).count()


class ClaimWatch:
    """Counts, inside every claim made under the limits, what the database then holds in flight.

    The count runs in the poll's own transaction, after its claims and before its commit, while
    the poll holds the limit's row lock: it sees every claim committed before (claims take that
    lock too) and this poll's own, less whatever completions committed meanwhile. Jobs only
    enter flight through such claims, so no committed state ever holds more in flight than the
    largest of these counts: a limit overshot in the database shows here, whatever the workers
    believe they hold.
    """

    def __init__(self, monkeypatch, space, name: str) -> None:
        self.peak = 0
        self.claimed: list[str] = []
        self._lock = threading.Lock()
        real = services._claim_limited

        def watched(*args, **kwargs) -> list[str]:
            ids = real(*args, **kwargs)
            held = in_flight_in_db(space, name)
            mine = list(Job.objects.filter(pk__in=ids, name=name).values_list("pk", flat=True))
            with self._lock:
                self.peak = max(self.peak, held)
                self.claimed += mine
            return ids

        monkeypatch.setattr(services, "_claim_limited", watched)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_pollers_never_exceed_the_limit(monkeypatch):
    space = SpaceFactory()
    make(space, "email", 200)
    make(space, "free", 100)
    flow.set_limit(space, "email", concurrency=5, rate=None)
    watch = ClaimWatch(monkeypatch, space, "email")
    barrier = threading.Barrier(16)

    def poller() -> list[Job]:
        got: list[Job] = []
        barrier.wait(30)
        for _ in range(10):
            got += services.poll_jobs(space, count=7)
        return got

    got = [job for jobs in threads.run_together(16, poller) for job in jobs]
    names = [j.name for j in got]
    assert names.count("email") == 5  # held, never completed: the limit is exact
    assert names.count("free") == 100
    assert len({j.id for j in got}) == len(got)
    # Every claim of the limited name went through the limits, and none overshot them.
    assert sorted(watch.claimed) == sorted(j.id for j in got if j.name == "email")
    assert watch.peak == 5
    assert in_flight_in_db(space, "email") == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_while_workers_complete_and_poll_again(monkeypatch):
    space = SpaceFactory()
    make(space, "email", 120)
    flow.set_limit(space, "email", concurrency=4, rate=None)
    # The database counts, not the workers: a count the workers keep themselves is wrong either
    # way round. Lowered before complete_job commits, it hides a job still held in flight (an
    # overshoot goes unseen); lowered after, it still counts a job whose completion another
    # poll has already seen and replaced (it reads 5 under a limit of 4 with nothing wrong).
    watch = ClaimWatch(monkeypatch, space, "email")
    # What the database holds in flight right after each poll returned (committed), sampled by
    # the workers while others complete: a second look, beside the count inside each claim.
    after_poll = [0]
    done = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            jobs = services.poll_jobs(space, count=3, ack=True)
            if not jobs:
                with lock:
                    if done[0] >= 120:
                        return
                continue
            held = in_flight_in_db(space, "email")
            with lock:
                after_poll[0] = max(after_poll[0], held)
            for job in jobs:
                services.complete_job(job)
                with lock:
                    done[0] += 1

    threads.run_together(16, worker)
    assert done[0] == 120
    # Every hand-out went through the limits (each job once), and none overshot them.
    assert len(watch.claimed) == len(set(watch.claimed)) == 120
    assert 1 <= watch.peak <= 4
    assert after_poll[0] <= 4
    assert Job.objects.filter(space=space, status=Job.Status.COMPLETED).count() == 120
    assert in_flight_in_db(space, "email") == 0


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
    expected = {
        "name": "email",
        "concurrency": 2,
        "rate": 5.0,
        "keyConcurrency": None,
        "keyRate": None,
    }
    assert response.json() == expected
    assert client.get(url).json() == {"limits": [expected]}
    stored = NameLimit.objects.get(space=space, name="email")
    assert (stored.concurrency, stored.rate) == (2, 5.0)
    assert client.delete(f"{url}/email").status_code == 204
    assert not NameLimit.objects.exists()
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
