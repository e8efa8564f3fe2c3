from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import time_machine

from jobs.api import throttling
from spaces.models import ApiKey


def redis_name(key_id: int, when: datetime) -> str:
    """The shared counter of KEY_ID for the second WHEN is in (jobs/api/throttling.py)."""
    return f"jobyard:rl:{key_id}:{int(when.timestamp())}"


class Counters:
    """A key's count for one second, read where the limit keeps it: Redis when REDIS_URL is
    set (the shared counter every web process adds to), else this process's own window."""

    def __init__(self, client) -> None:
        self.client = client
        self.used: set[str] = set()

    def __call__(self, key_id: int, when: datetime) -> int:
        if self.client is None:
            second, count = throttling._windows.get(key_id, (None, 0))
            return count if second == int(when.timestamp()) else 0
        name = redis_name(key_id, when)
        self.used.add(name)
        return int(self.client.get(name) or 0)

    def forget(self, key_id: int, when: datetime) -> None:
        """Start from zero (a counter left by an earlier run of the suite lives 2 s)."""
        if self.client is not None:
            self.used.add(redis_name(key_id, when))
            self.client.delete(redis_name(key_id, when))


@pytest.fixture
def counters(settings, monkeypatch):
    monkeypatch.setattr(throttling, "_redis_client", None)
    monkeypatch.setattr(throttling, "_redis_down_until", 0.0)
    monkeypatch.setattr(throttling, "_shared", {})
    monkeypatch.setattr(throttling, "_windows", {})
    client = None
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
    read = Counters(client)
    yield read
    if client is not None and read.used:
        client.delete(*read.used)


def key_id_of(space, name: str = "test key") -> int:
    return ApiKey.objects.get(space=space, name=name).pk


def test_over_the_limit_is_429_with_retry_after_and_the_next_second_is_free(
    api, space, settings, counters
):
    settings.API_RATE_LIMIT_PER_SECOND = 3
    url = f"/api/v1/spaces/{space.public_id}/jobs"
    first = datetime(2031, 5, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    key_id = key_id_of(space)
    counters.forget(key_id, first)
    counters.forget(key_id, first.replace(second=1))
    with time_machine.travel(first, tick=False) as clock:
        codes = [api.get(url).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = api.get(url)
        assert response.status_code == 429
        assert response["Retry-After"] == "1"
        assert response.json()["code"] == "rate_limited"
        # Every request of the second was counted where the limit is kept (with Redis: the
        # shared counter; under 20 a second every hit is sent).
        assert counters(key_id, first) == 5
        clock.shift(1)
        assert api.get(url).status_code == 200
    assert counters(key_id, first.replace(second=1)) == 1


def test_the_limit_is_per_key(api, space, settings, client_for, counters):
    from tests.factories import issue_key

    settings.API_RATE_LIMIT_PER_SECOND = 1
    other = client_for(issue_key(space, name="other key"))
    url = f"/api/v1/spaces/{space.public_id}/jobs"
    when = datetime(2031, 5, 2, tzinfo=UTC)
    counters.forget(key_id_of(space), when)
    counters.forget(key_id_of(space, "other key"), when)
    with time_machine.travel(when, tick=False):
        assert api.get(url).status_code == 200
        assert api.get(url).status_code == 429
        assert other.get(url).status_code == 200
    assert counters(key_id_of(space), when) == 2
    assert counters(key_id_of(space, "other key"), when) == 1


def test_redis_down_fails_open(api, space, settings, monkeypatch):
    settings.API_RATE_LIMIT_PER_SECOND = 1000
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(throttling, "_redis_client", None)
    monkeypatch.setattr(throttling, "_redis_down_until", 0.0)
    assert api.get(f"/api/v1/spaces/{space.public_id}/jobs").status_code == 200


# --- the shared counter (Redis), sent in batches ----------------------------------------------

SECOND = datetime(2031, 5, 3, 0, 0, 0, 100_000, tzinfo=UTC)


@pytest.fixture
def shared(settings, monkeypatch):
    """A fresh key id and clean throttling state against the real Redis; counts INCRBY calls."""
    import redis

    assert settings.REDIS_URL
    monkeypatch.setattr(throttling, "_redis_client", None)
    monkeypatch.setattr(throttling, "_redis_down_until", 0.0)
    monkeypatch.setattr(throttling, "_shared", {})
    sends: list[int] = []
    real = throttling._redis_hit

    def counted(key_id: int, second: int, hits: int = 1):
        sends.append(hits)
        return real(key_id, second, hits)

    monkeypatch.setattr(throttling, "_redis_hit", counted)
    key_id = random.randint(10**9, 2 * 10**9)
    client = redis.Redis.from_url(settings.REDIS_URL)
    name = f"jobyard:rl:{key_id}:{int(SECOND.timestamp())}"
    yield key_id, sends, client, name
    client.delete(name)


@pytest.mark.redis
def test_far_from_the_limit_hits_reach_redis_in_batches(settings, shared):
    key_id, sends, client, name = shared
    settings.API_RATE_LIMIT_PER_SECOND = 1000  # batches of 50
    with time_machine.travel(SECOND, tick=False):
        assert all(throttling.check(key_id) is None for _ in range(60))
    # The first hit of the second, then one batch of 50: 2 round trips for 60 requests.
    assert sends == [1, 50]
    assert int(client.get(name)) == 51


@pytest.mark.redis
def test_hits_of_other_processes_count_from_the_first_request(settings, shared):
    key_id, sends, client, name = shared
    settings.API_RATE_LIMIT_PER_SECOND = 1000
    client.set(name, 1000, ex=5)  # other web processes used the whole second
    with time_machine.travel(SECOND, tick=False):
        assert throttling.check(key_id) is not None


@pytest.mark.redis
def test_near_the_limit_every_hit_is_sent_and_the_limit_is_exact(settings, shared):
    key_id, sends, client, name = shared
    settings.API_RATE_LIMIT_PER_SECOND = 100  # batches of 5
    client.set(name, 95, ex=5)  # within a batch of the limit
    with time_machine.travel(SECOND, tick=False):
        allowed = [throttling.check(key_id) is None for _ in range(8)]
    assert allowed == [True] * 5 + [False] * 3
    assert sends == [1] * 8
