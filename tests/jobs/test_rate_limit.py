from __future__ import annotations

from datetime import UTC, datetime

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
