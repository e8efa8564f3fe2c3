"""The job and space WebSocket streams, on the in-memory channel layer (jobs/consumers.py)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from jobs import consumers, events, queries, services, streams
from jobs.models import Job
from spaces import scopes
from spaces.models import ApiKey, Space
from tests.factories import issue_key

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()


@pytest.fixture(autouse=True)
async def close_orm_thread_connections(anyio_backend):
    """The ORM thread keeps its connection (CONN_MAX_AGE); close it so the test DB can go."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def application():
    from config.asgi import application

    return application


class Socket:
    """A WebsocketCommunicator with the helpers these tests need."""

    def __init__(self, application, path: str, headers=None) -> None:
        self.comm = WebsocketCommunicator(application, path, headers=headers or [])

    async def open(self) -> Socket:
        connected, _ = await self.comm.connect()
        assert connected
        return self

    async def receive(self) -> dict:
        return await self.comm.receive_json_from(timeout=5)

    async def closed_with(self) -> int:
        message = await self.comm.receive_output(timeout=5)
        assert message["type"] == "websocket.close", message
        return message["code"]

    async def silent(self) -> bool:
        return await self.comm.receive_nothing(timeout=0.2)

    async def close(self) -> None:
        await self.comm.disconnect()


async def open_socket(application, path: str, token: str | None = None, headers=None) -> Socket:
    if token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    return await Socket(application, path, headers).open()


def session_headers(user, origin=ORIGIN) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), origin]


# Database work runs in the ORM's thread, as request handlers do; their commit publishes.
@database_sync_to_async
def create(space: Space, name: str = "email.send") -> Job:
    job, _ = services.create_job(space, {"name": name, "payload": {"to": "a@example.com"}})
    return job


@database_sync_to_async
def run_to_completion(space: Space) -> Job:
    (job,) = services.poll_jobs(space)
    services.ack_job(job)
    services.report_progress(job, 40, "resizing", {"thumbs": {"percent": 80}})
    services.checkpoint_job(job, {"step": 2})
    services.record_custom_event(job, "cache.warm", {"hits": 3})
    services.complete_job(job, {"url": "https://cdn.example.com/x.png"})
    return job


@database_sync_to_async
def key_for(space: Space, scope_list: list[str]) -> str:
    return issue_key(space, scope_list)


LIFECYCLE = ["delivered", "started", "progress", "checkpoint", "cache.warm", "completed"]


# --- job stream ------------------------------------------------------------------------------


async def test_a_read_key_gets_every_event_of_the_job_with_data(application, space):
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)

    init = await socket.receive()
    assert init == {
        "type": "init",
        "jobId": job.pk,
        "status": "pending",
        "progress": None,
        "jobName": "email.send",
        "spaceId": space.public_id,
        "attemptNumber": 0,
        "seq": 1,
        "timestamp": init["timestamp"],
        # The envelope's data: the job as it is when the stream opens.
        "data": {"status": "pending", "progress": None},
    }
    assert init["timestamp"].endswith("Z")
    await run_to_completion(space)
    received = [await socket.receive() for _ in LIFECYCLE]
    assert [e["type"] for e in received] == LIFECYCLE
    assert [e["seq"] for e in received] == [2, 3, 4, 5, 6, 7]
    completed = received[-1]
    assert completed == {
        "type": "completed",
        "jobId": job.pk,
        "jobName": "email.send",
        "spaceId": space.public_id,
        "status": "completed",
        "attemptNumber": 0,
        "data": {"result": {"url": "https://cdn.example.com/x.png"}},
        "seq": 7,
        "timestamp": completed["timestamp"],
    }
    assert completed["timestamp"].endswith("Z")
    assert received[2]["data"] == {
        "percent": 40,
        "message": "resizing",
        "subProgress": {"thumbs": {"percent": 80}},
    }
    assert await socket.silent()
    await socket.close()


# What a progress-only viewer may receive, field for field (docs/streams.md, "Job stream").
PUBLIC_INIT_KEYS = {"type", "jobId", "status", "progress", "timestamp", "data"}
PUBLIC_EVENT_KEYS = {"type", "jobId", "status", "data", "timestamp"}


@database_sync_to_async
def anonymous_credentials(cast, viewer: str) -> tuple[str | None, list]:
    """(token, headers) of each way to open the progress view of a job of cast.space."""
    if viewer == "no-token":
        return None, []
    if viewer == "progress-key":
        return issue_key(cast.space, [scopes.READ_PROGRESS]), []
    if viewer == "public-progress-key":
        return cast.space.public_progress_key, []
    if viewer == "outsider-session":
        return None, session_headers(cast.charlie)
    if viewer == "member-foreign-origin":
        return None, session_headers(cast.bob, origin=(b"origin", b"https://evil.example"))
    raise AssertionError(viewer)


VIEWERS = [
    "no-token",
    "progress-key",
    "public-progress-key",
    "outsider-session",
    "member-foreign-origin",
]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_progress_viewers_get_exactly_the_documented_fields(application, cast, viewer):
    job = await create(cast.space)
    token, headers = await anonymous_credentials(cast, viewer)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", token, headers)

    init = await socket.receive()
    assert set(init) == PUBLIC_INIT_KEYS
    assert init == {
        "type": "init",
        "jobId": job.pk,
        "status": "pending",
        "progress": None,
        "timestamp": init["timestamp"],
        "data": {"status": "pending", "progress": None},
    }

    await run_to_completion(cast.space)
    progress = await socket.receive()
    completed = await socket.receive()
    assert set(progress) == PUBLIC_EVENT_KEYS
    assert set(completed) == PUBLIC_EVENT_KEYS
    assert progress == {
        "type": "progress",
        "jobId": job.pk,
        "status": "running",
        "data": {"percent": 40, "message": "resizing", "subProgress": {"thumbs": {"percent": 80}}},
        "timestamp": progress["timestamp"],
    }
    assert completed == {
        "type": "completed",
        "jobId": job.pk,
        "status": "completed",
        "data": {},  # the envelope always has data; the progress view holds nothing of a result
        "timestamp": completed["timestamp"],
    }
    assert progress["timestamp"].endswith("Z") and completed["timestamp"].endswith("Z")
    # delivered, started, checkpoint and the custom event never reach this viewer
    assert await socket.silent()
    await socket.close()


async def test_the_progress_view_of_init_holds_only_the_documented_progress_fields(
    application, space
):
    job = await create(space)

    @database_sync_to_async
    def halfway():
        (polled,) = services.poll_jobs(space)
        services.ack_job(polled)
        services.report_progress(polled, 50, "half way", {"a": {"percent": 10}})

    await halfway()
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    init = await socket.receive()
    assert set(init) == PUBLIC_INIT_KEYS
    assert set(init["progress"]) == {"percent", "message", "subProgress", "updatedAt"}
    assert init["progress"]["subProgress"] == {"a": {"percent": 10}}
    await socket.close()


async def test_events_read_from_the_database_get_the_same_progress_view(
    application, space, monkeypatch, settings
):
    """Events a failed fan-out dropped are read back from the database (the catch-up) and pass
    through the same filter as live ones."""
    settings.STREAM_RECHECK_SECONDS = 0.05
    job = await create(space)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    assert set(await socket.receive()) == PUBLIC_INIT_KEYS
    monkeypatch.setattr(streams, "fan_out", lambda messages: False)

    await run_to_completion(space)
    progress = await socket.receive()
    completed = await socket.receive()
    assert (progress["type"], set(progress)) == ("progress", PUBLIC_EVENT_KEYS)
    assert (completed["type"], set(completed), completed["data"]) == (
        "completed",
        PUBLIC_EVENT_KEYS,
        {},
    )
    await socket.close()


async def test_the_progress_view_of_an_envelope_is_field_for_field():
    envelope = {
        "type": "progress",
        "jobId": "j",
        "jobName": "secret.name",
        "spaceId": "s",
        "status": "running",
        "attemptNumber": 2,
        "data": {"percent": 1, "message": "m", "extra": "not documented"},
        "seq": 9,
        "timestamp": "t",
    }
    assert consumers.public_event(envelope) == {
        "type": "progress",
        "jobId": "j",
        "status": "running",
        "data": {"percent": 1, "message": "m"},
        "timestamp": "t",
    }
    assert consumers.public_event({**envelope, "type": "completed", "data": {"r": 1}})["data"] == {}
    for other in ("created", "delivered", "started", "logs", "dead", "killed", "cache.warm"):
        assert consumers.public_event({**envelope, "type": other}) is None


async def test_init_carries_the_latest_progress(application, space):
    job = await create(space)

    @database_sync_to_async
    def halfway():
        (polled,) = services.poll_jobs(space)
        services.ack_job(polled)
        services.report_progress(polled, 50, "half way")

    await halfway()
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    init = await socket.receive()
    assert init["status"] == "running"
    assert (init["progress"]["percent"], init["progress"]["message"]) == (50, "half way")
    await socket.close()


async def test_the_public_progress_key_gets_the_progress_view(application, space):
    job = await create(space)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", space.public_progress_key)
    assert set(await socket.receive()) == PUBLIC_INIT_KEYS
    await socket.close()


async def test_a_member_session_gets_the_full_job_stream(application, cast):
    job = await create(cast.space)
    headers = await database_sync_to_async(session_headers)(cast.bob)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", headers=headers)
    assert (await socket.receive())["seq"] == 1  # only the full view carries seq in init
    await socket.close()


async def test_an_outsider_session_gets_only_the_progress_view(application, cast):
    job = await create(cast.space)
    headers = await database_sync_to_async(session_headers)(cast.charlie)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", headers=headers)
    assert "seq" not in await socket.receive()
    await socket.close()


async def test_a_member_session_from_a_foreign_origin_is_not_trusted(application, cast):
    job = await create(cast.space)
    headers = await database_sync_to_async(session_headers)(
        cast.bob, origin=(b"origin", b"https://evil.example")
    )
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", headers=headers)
    assert "seq" not in await socket.receive()
    await socket.close()


async def test_job_stream_close_codes(application, cast):
    job = await create(cast.space)
    other = await key_for(cast.other_space, [scopes.READ])
    create_only = await key_for(cast.space, [scopes.CREATE])
    cases = [
        (f"/api/v1/realtime/{job.pk}?token=emit_{'x' * 43}", 4401),  # unknown key
        (f"/api/v1/realtime/{job.pk}?token=garbage", 4401),
        (f"/api/v1/realtime/{job.pk}?token={other}", 4403),  # key of another space
        (f"/api/v1/realtime/{job.pk}?token={create_only}", 4403),  # no read scope
        ("/api/v1/realtime/01JNOSUCHJOB0000000000000", 4404),
        ("/api/v1/nothing/here", 4404),
    ]
    for path, code in cases:
        socket = await open_socket(application, path)
        assert await socket.closed_with() == code, path
        await socket.close()


async def test_a_revoked_key_is_closed_within_the_recheck_interval(application, space, settings):
    settings.STREAM_RECHECK_SECONDS = 0.05
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)
    await socket.receive()

    await database_sync_to_async(lambda: ApiKey.objects.get(name="test key").revoke())()
    assert await socket.closed_with() == 4401
    await socket.close()


async def test_pings_are_answered_and_other_json_is_ignored(application, space):
    job = await create(space)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    await socket.receive()
    await socket.comm.send_json_to({"type": "ping"})
    assert await socket.receive() == {"type": "pong", "data": {}}
    for ignored in ({"type": "hello"}, [1, 2], 42, "ping", {"type": "ping", "pad": "x" * 4000}):
        await socket.comm.send_to(text_data=json.dumps(ignored))
    # the last one is a ping just under the cap: answered, the socket stays open
    assert await socket.receive() == {"type": "pong", "data": {}}
    assert await socket.silent()
    await socket.close()


# Client messages the streams refuse (docs/streams.md, "Client messages"), as ASGI messages.
BAD_MESSAGES = {
    "binary": ({"bytes": b'{"type": "ping"}'}, consumers.CLOSE_BAD_MESSAGE),
    "binary-empty": ({"bytes": b""}, consumers.CLOSE_BAD_MESSAGE),
    "empty-text": ({"text": ""}, consumers.CLOSE_BAD_MESSAGE),
    "oversized": ({"text": json.dumps({"type": "ping", "pad": "x" * 5000})}, 4413),
    # 1,500 characters but 4,500 bytes of UTF-8: the cap counts bytes
    "oversized-in-bytes": (
        {"text": json.dumps({"pad": "\u20ac" * 1500}, ensure_ascii=False)},
        4413,
    ),
    "not-json": ({"text": "not json"}, consumers.CLOSE_BAD_MESSAGE),
    "truncated-json": ({"text": '{"type": "pi'}, consumers.CLOSE_BAD_MESSAGE),
    "nan": ({"text": '{"type": "ping", "n": NaN}'}, consumers.CLOSE_BAD_MESSAGE),
    "infinity": ({"text": '{"n": -Infinity}'}, consumers.CLOSE_BAD_MESSAGE),
    "huge-number": ({"text": '{"n": 1e400}'}, consumers.CLOSE_BAD_MESSAGE),
    "escaped-lone-surrogate": ({"text": '{"type": "\\ud800"}'}, consumers.CLOSE_BAD_MESSAGE),
    "raw-lone-surrogate": ({"text": '{"type": "\ud800"}'}, consumers.CLOSE_BAD_MESSAGE),
    "surrogate-in-key": ({"text": '{"\\udfff": 1}'}, consumers.CLOSE_BAD_MESSAGE),
    "nul": ({"text": '{"type": "ping\\u0000"}'}, consumers.CLOSE_BAD_MESSAGE),
    "too-deep": ({"text": "[" * 100 + "]" * 100}, consumers.CLOSE_BAD_MESSAGE),
}


@pytest.mark.parametrize("stream", ["job", "space"])
@pytest.mark.parametrize("case", list(BAD_MESSAGES))
async def test_a_bad_client_message_closes_with_its_code_and_one_log_line(
    application, space, caplog, stream, case
):
    message, code = BAD_MESSAGES[case]
    job = await create(space)
    if stream == "job":
        socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    else:
        token = await key_for(space, [scopes.READ])
        socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    await socket.comm.send_input({"type": "websocket.receive", **message})

    # An exception in the consumer would surface here instead of a close (the server would
    # log it with a traceback and close with 1011).
    closed = await socket.comm.receive_output(timeout=5)
    assert closed["type"] == "websocket.close", closed
    assert closed["code"] == code
    if code == consumers.CLOSE_BAD_MESSAGE:  # the reason tells the client what was wrong
        reason = closed["reason"]
        assert reason and len(reason.encode()) <= 123 and reason.isascii() and reason.isprintable()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    [line] = [r for r in caplog.records if r.name == "jobs.consumers"]
    assert line.levelno == logging.INFO
    assert line.close_code == code
    assert "\n" not in line.getMessage()
    # the client's text is not copied into the log
    text = message.get("text") or ""
    assert not (text and text in line.getMessage())
    await socket.close()


async def test_the_close_reason_says_what_was_wrong(application, space):
    job = await create(space)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    await socket.receive()
    await socket.comm.send_to(text_data='{"n": NaN}')
    closed = await socket.comm.receive_output(timeout=5)
    assert (closed["code"], closed["reason"]) == (4400, "not JSON: NaN is not a JSON number")
    await socket.close()


async def test_a_job_stream_reads_an_event_whose_message_was_lost(application, space, monkeypatch):
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}", token)
    await socket.receive()

    # The "delivered" message never reaches the layer (Redis blipped for that one send).
    real_fan_out = streams.fan_out
    monkeypatch.setattr(streams, "fan_out", lambda messages: True)
    await database_sync_to_async(services.poll_jobs)(space)
    monkeypatch.setattr(streams, "fan_out", real_fan_out)
    await database_sync_to_async(services.ack_job)(job)

    assert [(await socket.receive())["type"] for _ in range(2)] == ["delivered", "started"]
    await socket.close()


# --- space stream ----------------------------------------------------------------------------


async def test_the_space_stream_starts_with_connected_and_numbers_every_event(application, space):
    await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)

    connected = await socket.receive()
    instance = streams.stream_instance_id(space.public_id)
    counts = dict.fromkeys(queries.STATUSES, 0) | {"pending": 1}
    assert connected == {
        "type": "connected",
        "spaceId": space.public_id,
        "seq": 1,
        "streamInstanceId": instance,
        "missed": False,
        "counts": counts,
        "timestamp": connected["timestamp"],
        "data": {"streamInstanceId": instance, "missed": False, "counts": counts},
    }
    await create(space, "second")
    await run_to_completion(space)
    received = [await socket.receive() for _ in range(1 + len(LIFECYCLE))]
    assert [e["seq"] for e in received] == list(range(2, 9))
    assert [e["type"] for e in received] == ["created", *LIFECYCLE]
    # Events that move a job between statuses carry the counts; the others do not.
    with_counts = {e["type"]: e["counts"] for e in received if "counts" in e}
    assert set(with_counts) == {"created", "delivered", "started", "completed"}
    assert with_counts["created"]["pending"] == 2
    assert with_counts["completed"] == dict.fromkeys(queries.STATUSES, 0) | {
        "pending": 1,
        "completed": 1,
    }
    await socket.close()


async def test_a_reconnect_with_since_replays_the_missed_events_in_order(application, space):
    token = await key_for(space, [scopes.READ])
    path = f"/api/v1/realtime/spaces/{space.public_id}"
    socket = await open_socket(application, path, token)
    first = await socket.receive()
    await create(space)
    seen = await socket.receive()
    await socket.close()

    await run_to_completion(space)  # while disconnected
    socket = await open_socket(
        application,
        f"{path}?since={seen['seq']}&streamInstanceId={first['streamInstanceId']}",
        token,
    )
    connected = await socket.receive()
    assert (connected["seq"], connected["missed"]) == (7, False)
    replayed = [await socket.receive() for _ in LIFECYCLE]
    assert [e["type"] for e in replayed] == LIFECYCLE
    assert [e["seq"] for e in replayed] == [2, 3, 4, 5, 6, 7]
    assert replayed[-1]["data"] == {"result": {"url": "https://cdn.example.com/x.png"}}
    assert await socket.silent()
    await socket.close()


@pytest.mark.parametrize(
    "query",
    ["since=1&streamInstanceId=other.1", "since=99&streamInstanceId={instance}", "since=x"],
    ids=["other-instance", "since-ahead", "malformed"],
)
async def test_a_gap_the_server_cannot_account_for_is_reported_as_missed(application, space, query):
    await create(space)
    token = await key_for(space, [scopes.READ])
    instance = streams.stream_instance_id(space.public_id)
    path = f"/api/v1/realtime/spaces/{space.public_id}?" + query.format(instance=instance)
    socket = await open_socket(application, path, token)
    connected = await socket.receive()
    assert connected["missed"] is True
    assert await socket.silent()
    await socket.close()


async def test_a_long_replay_is_sent_page_by_page_in_order(application, space, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAY_PAGE", 2)
    for i in range(5):
        await create(space, f"job{i}")
    token = await key_for(space, [scopes.READ])
    instance = streams.stream_instance_id(space.public_id)
    path = f"/api/v1/realtime/spaces/{space.public_id}?since=0&streamInstanceId={instance}"
    socket = await open_socket(application, path, token)
    connected = await socket.receive()
    assert connected["missed"] is False
    replayed = [await socket.receive() for _ in range(connected["seq"])]
    assert [e["seq"] for e in replayed] == list(range(1, connected["seq"] + 1))
    assert [e["jobName"] for e in replayed if e["type"] == "created"] == [
        f"job{i}" for i in range(5)
    ]
    assert await socket.silent()
    await socket.close()


async def test_a_gap_longer_than_the_replay_limit_is_missed(application, space, settings):
    settings.STREAM_REPLAY_LIMIT = 2
    for _ in range(3):
        await create(space)
    token = await key_for(space, [scopes.READ])
    instance = streams.stream_instance_id(space.public_id)
    path = f"/api/v1/realtime/spaces/{space.public_id}?since=0&streamInstanceId={instance}"
    socket = await open_socket(application, path, token)
    assert (await socket.receive())["missed"] is True
    assert await socket.silent()
    await socket.close()


async def test_a_late_message_is_filled_in_from_the_database(application, space, monkeypatch):
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()

    # The first job's messages are held back, as when another process is slower to send.
    held: list = []
    real_fan_out = streams.fan_out
    monkeypatch.setattr(streams, "fan_out", held.extend)
    await create(space, "first")
    monkeypatch.setattr(streams, "fan_out", real_fan_out)
    await create(space, "second")
    assert [(e["seq"], e["jobName"]) for e in [await socket.receive() for _ in range(2)]] == [
        (1, "first"),
        (2, "second"),
    ]
    # The late message then arrives and is dropped as already sent.
    real_fan_out(held)
    assert await socket.silent()
    await socket.close()


async def test_a_quiet_space_stream_catches_up_when_fan_out_was_down(
    application, space, monkeypatch, settings
):
    settings.STREAM_RECHECK_SECONDS = 0.05
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()
    monkeypatch.setattr(streams, "fan_out", lambda messages: False)
    await create(space)
    event = await socket.receive()
    assert (event["type"], event["seq"]) == ("created", 1)
    await socket.close()


async def test_counts_changes_without_an_event_are_sent(application, space):
    await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()
    await database_sync_to_async(streams.adjust_counts)(space.pk, {"pending": -1})
    message = await socket.receive()
    assert message == {
        "type": "counts",
        "seq": 1,
        "counts": dict.fromkeys(queries.STATUSES, 0),
        "timestamp": message["timestamp"],
        "data": {"counts": dict.fromkeys(queries.STATUSES, 0)},
    }
    await socket.close()


async def test_a_member_session_opens_the_space_stream(application, cast):
    headers = await database_sync_to_async(session_headers)(cast.bob)
    socket = await open_socket(
        application, f"/api/v1/realtime/spaces/{cast.space.public_id}", headers=headers
    )
    assert (await socket.receive())["type"] == "connected"
    await socket.close()


async def test_space_stream_close_codes(application, cast):
    space = cast.space
    path = f"/api/v1/realtime/spaces/{space.public_id}"
    other = await key_for(cast.other_space, [scopes.READ])
    progress_only = await key_for(space, [scopes.READ_PROGRESS, scopes.WRITE])
    outsider = await database_sync_to_async(session_headers)(cast.charlie)
    member_elsewhere = await database_sync_to_async(session_headers)(
        cast.bob, origin=(b"origin", b"https://evil.example")
    )
    member_no_origin = [h for h in member_elsewhere if h[0] != b"origin"]
    cases = [
        (path, None, [], 4401),  # nothing at all
        (path, f"emit_{'y' * 43}", [], 4401),  # unknown key
        (path, other, [], 4403),  # key of another space
        (path, progress_only, [], 4403),  # no jobs:read
        (path, space.public_progress_key, [], 4403),
        (path, None, outsider, 4403),  # session of a non-member
        (path, None, member_elsewhere, 4403),  # member's cookie sent by another site
        (path, None, member_no_origin, 4403),
        ("/api/v1/realtime/spaces/01JNOSUCHSPACE00000000000", None, outsider, 4404),
        ("/api/v1/realtime/spaces/01JNOSUCHSPACE00000000000", other, [], 4403),
    ]
    for url, token, headers, code in cases:
        socket = await open_socket(application, url, token, headers)
        assert await socket.closed_with() == code, (url, token, headers)
        await socket.close()


async def test_a_member_removed_from_the_org_is_closed(application, cast, settings):
    settings.STREAM_RECHECK_SECONDS = 0.05
    headers = await database_sync_to_async(session_headers)(cast.bob)
    socket = await open_socket(
        application, f"/api/v1/realtime/spaces/{cast.space.public_id}", headers=headers
    )
    await socket.receive()
    await database_sync_to_async(lambda: cast.bob.memberships.all().delete())()
    assert await socket.closed_with() == 4403
    await socket.close()


async def test_events_recorded_directly_are_streamed(application, space):
    """Any code path that writes events through jobs.events reaches the streams."""
    job = await create(space)
    token = await key_for(space, [scopes.READ])
    socket = await open_socket(application, f"/api/v1/realtime/spaces/{space.public_id}", token)
    await socket.receive()

    @database_sync_to_async
    def callback_sent():
        events.record(job, "callback_sent", {"host": "hooks.example.com", "status": 200})

    await callback_sent()
    event = await socket.receive()
    assert (event["type"], event["seq"], "counts" in event) == ("callback_sent", 2, False)
    await asyncio.sleep(0)
    await socket.close()


async def test_a_stream_whose_job_is_deleted_closes_with_4404(application, space, settings):
    settings.STREAM_RECHECK_SECONDS = 0.05
    job = await create(space)
    socket = await open_socket(application, f"/api/v1/realtime/{job.pk}")
    await socket.receive()
    await database_sync_to_async(lambda: Job.objects.filter(pk=job.pk).delete())()
    assert await socket.closed_with() == 4404
    await socket.close()


async def test_repeated_bad_tokens_from_one_address_are_throttled(application, space, settings):
    from spaces.auth import failures

    settings.AUTH_FAILURE_LIMIT = 3
    failures.reset()
    good = await key_for(space, [scopes.READ])
    path = f"/api/v1/realtime/spaces/{space.public_id}"

    async def attempt(token: str) -> int:
        socket = Socket(application, f"{path}?token={token}")
        socket.comm.scope["client"] = ("203.0.113.9", 40000)
        await socket.open()
        code = await socket.closed_with()
        await socket.close()
        return code

    try:
        assert [await attempt(f"emit_{'z' * 43}") for _ in range(3)] == [4401] * 3
        # Blocked now: even the right key is refused before it is checked.
        assert await attempt(good) == consumers.CLOSE_THROTTLED
    finally:
        failures.reset()
