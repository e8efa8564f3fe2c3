from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import time_machine

from jobs.api import throttling


def test_over_the_limit_is_429_with_retry_after_and_the_next_second_is_free(api, space, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 3
    url = f"/api/v1/spaces/{space.public_id}/jobs"
    with time_machine.travel(
        datetime(2031, 5, 1, 0, 0, 0, 250_000, tzinfo=UTC), tick=False
    ) as clock:
        codes = [api.get(url).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = api.get(url)
        assert response.status_code == 429
        assert response["Retry-After"] == "1"
        assert response.json()["code"] == "rate_limited"
        clock.shift(1)
        assert api.get(url).status_code == 200


def test_the_limit_is_per_key(api, space, settings, client_for):
    from tests.factories import issue_key

    settings.API_RATE_LIMIT_PER_SECOND = 1
    other = client_for(issue_key(space))
    url = f"/api/v1/spaces/{space.public_id}/jobs"
    with time_machine.travel(datetime(2031, 5, 2, tzinfo=UTC), tick=False):
        assert api.get(url).status_code == 200
        assert api.get(url).status_code == 429
        assert other.get(url).status_code == 200


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
