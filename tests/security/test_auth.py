"""Authentication under attack: failure throttling, identical refusals, revocation, Origin.

(`check --deploy` in production mode is tests/test_settings.py; identical 401 bodies for an
unknown prefix and a wrong secret are tests/spaces/test_keys.py, extended here.)
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client, override_settings
from rest_framework.test import APIClient

from jobs import services, streams
from spaces import auth, keys, scopes
from spaces.models import ApiKey
from tests.factories import issue_key

ATTACKER = "203.0.113.7"
BYSTANDER = "198.51.100.9"


@pytest.fixture(autouse=True)
def throttle_on(settings):
    settings.AUTH_FAILURE_LIMIT = 20
    settings.AUTH_FAILURE_WINDOW = 60
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    auth.failures.reset()
    _forget_redis_counts(settings)
    yield
    auth.failures.reset()
    _forget_redis_counts(settings)


def _forget_redis_counts(settings) -> None:
    # The tests travel to the same window: counts of an earlier test would still be there.
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        names = list(client.scan_iter("jobyard:authfail:*"))
        if names:
            client.delete(*names)


def call(space, key: str, address: str = ATTACKER):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get(f"/api/v1/spaces/{space.public_id}/jobs")


def wrong(clear: str) -> str:
    return clear[:-4] + ("AAAA" if not clear.endswith("AAAA") else "BBBB")


T0 = dt.datetime(2026, 3, 2, 12, 0, 5, tzinfo=dt.UTC)


def test_an_address_is_throttled_after_20_failures_even_with_a_valid_key(space, key):
    with time_machine.travel(T0, tick=False):
        for _ in range(20):
            assert call(space, keys.generate()).status_code == 401
        blocked = call(space, key)
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "auth_throttled"
        assert 1 <= int(blocked["Retry-After"]) <= 60
        # Blocked before the key is looked at: a right and a wrong guess answer alike.
        assert call(space, wrong(key)).json() == blocked.json()
        # Another address is not affected.
        assert call(space, key, BYSTANDER).status_code == 200
    with time_machine.travel(T0 + dt.timedelta(seconds=int(blocked["Retry-After"]))):
        assert call(space, key).status_code == 200


def test_nineteen_failures_do_not_block(space, key):
    with time_machine.travel(T0, tick=False):
        for _ in range(19):
            assert call(space, wrong(key)).status_code == 401
        assert call(space, key).status_code == 200


def test_valid_key_traffic_is_never_counted(space, key):
    with time_machine.travel(T0, tick=False):
        for _ in range(50):
            assert call(space, key).status_code == 200
        assert ATTACKER not in auth.failures._counts
        for _ in range(19):
            assert call(space, wrong(key)).status_code == 401
        assert call(space, key).status_code == 200


def test_requests_without_any_key_are_not_counted_as_guesses(space, key):
    with time_machine.travel(T0, tick=False):
        for _ in range(30):
            response = APIClient(REMOTE_ADDR=ATTACKER).get(f"/api/v1/spaces/{space.public_id}/jobs")
            assert response.status_code == 401
        assert call(space, key).status_code == 200


def test_the_limit_can_be_turned_off(space, key, settings):
    settings.AUTH_FAILURE_LIMIT = 0
    for _ in range(30):
        assert call(space, wrong(key)).status_code == 401
    assert call(space, key).status_code == 200


def test_a_redis_outage_fails_open_to_the_local_count(space, key):
    throttle = auth.FailureThrottle()
    # Nothing listens on port 1.
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"), time_machine.travel(T0, tick=False):
        for _ in range(19):
            assert throttle.failed(ATTACKER) is None
        assert throttle.failed(ATTACKER) is not None
        assert throttle.retry_after(ATTACKER) is not None
        assert throttle.retry_after(BYSTANDER) is None


@pytest.mark.redis
def test_failures_are_counted_across_processes_through_redis(settings):
    address = "192.0.2.77"
    first, second = auth.FailureThrottle(), auth.FailureThrottle()  # two web processes
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    with time_machine.travel(T0, tick=False):
        window = int(T0.timestamp() // 60)
        client.delete(f"jobyard:authfail:{address}:{window}")
        for _ in range(10):
            assert first.failed(address) is None
        for _ in range(9):
            assert second.failed(address) is None
        # The 20th failure overall, in the second process: blocked there.
        assert second.failed(address) is not None
        assert second.retry_after(address) is not None


def test_every_refusal_of_a_key_looks_the_same(space, key):
    """Unknown prefix, wrong secret, revoked key, malformed key, either header: same answer."""
    revoked_clear = issue_key(space, name="to revoke")
    ApiKey.objects.get(name="to revoke").revoke()
    answers = set()
    for candidate in (keys.generate(), wrong(key), revoked_clear, "emit_short", "x" * 300):
        for header in ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY"):
            value = f"Bearer {candidate}" if header == "HTTP_AUTHORIZATION" else candidate
            response = APIClient(**{header: value}).get(f"/api/v1/spaces/{space.public_id}/jobs")
            assert response.status_code == 401
            answers.add((response.content, response["WWW-Authenticate"], response["Content-Type"]))
    assert len(answers) == 1, answers


def test_a_revoked_key_is_refused_on_the_very_next_request(space, key):
    assert call(space, key).status_code == 200
    ApiKey.objects.get(space=space, name="test key").revoke()
    assert call(space, key).status_code == 401


def test_a_key_revoked_in_the_dashboard_is_refused_at_once(cast):
    clear = issue_key(cast.space)
    row = ApiKey.objects.get(space=cast.space, name="test key")
    assert call(cast.space, clear).status_code == 200
    alice = Client()
    alice.force_login(cast.alice)
    response = alice.post(f"/spaces/{cast.space.public_id}/tokens/{row.pk}/revoke/")
    assert response.status_code in (200, 302)
    assert call(cast.space, clear).status_code == 401


# --- WebSockets ------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()


async def _closed_with(comm: WebsocketCommunicator, timeout: float = 5) -> int:
    while True:
        message = await comm.receive_output(timeout=timeout)
        if message["type"] == "websocket.close":
            return message["code"]


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_an_open_socket_closes_within_the_recheck_interval_after_revocation(
    in_memory_layer, space, settings
):
    from config.asgi import application

    settings.STREAM_RECHECK_SECONDS = 0.2
    try:
        clear = await database_sync_to_async(issue_key)(space, [scopes.READ], "watcher")
        job, _ = await database_sync_to_async(services.create_job)(space, {"name": "x"})
        comm = WebsocketCommunicator(application, f"/api/v1/realtime/{job.id}?token={clear}")
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["type"] == "init"
        # Still open across a re-check while the key is active.
        assert await comm.receive_nothing(timeout=0.5)
        await database_sync_to_async(
            lambda: ApiKey.objects.get(space=space, name="watcher").revoke()
        )()
        # The receive timeout (5 s) bounds the wait; the close itself comes on the next
        # re-check, 0.2 s here.
        assert await _closed_with(comm) == 4401
        await comm.wait()
    finally:
        await database_sync_to_async(connections.close_all)()


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin", [b"https://evil.example", b"http://testserver.evil.example", b"null", None]
)
async def test_a_member_session_from_a_foreign_origin_is_refused(in_memory_layer, cast, origin):
    from config.asgi import application

    try:
        session = Client()
        await database_sync_to_async(session.force_login)(cast.alice)
        headers = [(b"cookie", f"sessionid={session.cookies['sessionid'].value}".encode())]
        if origin is not None:
            headers.append((b"origin", origin))
        comm = WebsocketCommunicator(
            application, f"/api/v1/realtime/spaces/{cast.space.public_id}", headers=headers
        )
        assert (await comm.connect())[0]
        assert await _closed_with(comm) == 4403
        await comm.wait()
        # The same session from the site itself is accepted (the control).
        same = headers[:1] + [(b"origin", b"http://testserver")]
        comm = WebsocketCommunicator(
            application, f"/api/v1/realtime/spaces/{cast.space.public_id}", headers=same
        )
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from(timeout=5))["type"] == "connected"
        await comm.disconnect()
    finally:
        await database_sync_to_async(connections.close_all)()


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_stream_token_guesses_are_throttled_like_the_api(in_memory_layer, space):
    from config.asgi import application

    try:
        clear = await database_sync_to_async(issue_key)(space, [scopes.READ], "reader")
        path = f"/api/v1/realtime/spaces/{space.public_id}?token="

        async def attempt(token: str) -> dict:
            comm = WebsocketCommunicator(application, path + token)
            comm.scope["client"] = (ATTACKER, 40000)  # read when the application starts
            assert (await comm.connect())[0]
            first = await comm.receive_output(timeout=5)
            await comm.disconnect()
            return first

        for _ in range(20):
            first = await attempt(keys.generate())
            assert first == {"type": "websocket.close", "code": 4401}
        # After 20 failures from the address, even the right token gets no stream.
        first = await attempt(clear)
        assert first["type"] == "websocket.close", first
    finally:
        await database_sync_to_async(connections.close_all)()
