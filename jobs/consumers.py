"""Live streams of one job and of a whole space (protocol in docs/streams.md).

Each consumer joins its channel-layer group BEFORE it reads its starting point from the
database, so an event is either in the snapshot/replay or arrives live (or both: duplicates are
dropped by seq). Live events are emitted strictly in seq order: a space stream's seq is
contiguous, so a jump means a message is late or lost, and the missing events are read from
the database (they are stored: seq order is commit order, see jobs/streams.py); a job stream
uses the `prev` seq the sequencer attaches for the same purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from lib import jsonsafe
from lib.metrics import STREAM_CONNECTIONS
from lib.params import int_param
from spaces import access, scopes
from spaces.models import ApiKey, Space

from . import queries, streams
from .models import Job, JobEvent
from .stream_auth import query_params

log = logging.getLogger(__name__)

# Close codes (docs/streams.md).
CLOSE_UNAUTHORIZED = 4401  # no key, unknown or revoked key, or no session
CLOSE_FORBIDDEN = 4403  # key of another space, missing scope, not a member, foreign origin
CLOSE_NOT_FOUND = 4404  # no such job, space or stream path
CLOSE_THROTTLED = 4429  # too many failed keys from this address (as the API's 429)
CLOSE_BAD_MESSAGE = 4400  # a binary frame, or text that is not JSON lib.jsonsafe accepts
CLOSE_TOO_BIG = 4413  # a client message over MAX_FRAME_BYTES (like HTTP 413)

# Clients need send nothing but pings; a message bigger than this closes the socket.
MAX_FRAME_BYTES = 4096
# The longest close reason a close frame can carry is 123 bytes.
_REASON_CHARS = 120
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
# Events read from the database per query when replaying or filling a gap; a replay is sent
# page by page, so its size does not decide the memory a socket holds.
REPLAY_PAGE = 1000


def replay_limit() -> int:
    """The most events replayed on (re)connect or to fill a gap; beyond it the client refetches.
    The default covers a minute-long fan-out outage at 150 transitions per second."""
    return int(getattr(settings, "STREAM_REPLAY_LIMIT", 10_000))


# What a progress-only viewer sees (docs/streams.md, "Job stream"): only progress and completed
# events, completed without data, and of each only these fields. Nothing that names the job, its
# space or its attempts, and no seq (which would tell how busy the space is).
PUBLIC_EVENT_TYPES = frozenset({"progress", "completed"})
PUBLIC_EVENT_FIELDS = ("type", "jobId", "status", "data", "timestamp")
# What a progress report holds (jobs.services.report_progress); init's progress adds updatedAt.
PUBLIC_PROGRESS_FIELDS = ("percent", "message", "subProgress")


def _only(value: Any, fields: tuple[str, ...]) -> Any:
    """VALUE's FIELDS when it is an object; None otherwise."""
    if not isinstance(value, dict):
        return None
    return {name: value[name] for name in fields if name in value}


def _now() -> str | None:
    return queries.iso(timezone.now())


def job_snapshot(job: Job, progress: Any) -> dict[str, Any]:
    """The `data` of an init message: what the job is at the moment the stream opened."""
    return {"status": job.status, "progress": progress}


def public_init(job: Job) -> dict[str, Any]:
    """The first message of a progress-only viewer: the fields of the progress view's envelope
    (no seq, name, space or attempts), its `data` the job's snapshot, and `progress` at the top
    as well, where clients read it before the envelope had `data`."""
    progress = _only(job.progress, (*PUBLIC_PROGRESS_FIELDS, "updatedAt"))
    return {
        "type": "init",
        "jobId": job.pk,
        "status": job.status,
        "progress": progress,
        "timestamp": _now(),
        "data": job_snapshot(job, progress),
    }


def full_init(job: Job, space_public_id: str, seq: int) -> dict[str, Any]:
    """The first message of a full viewer: the whole envelope (seq of the job's latest event,
    timestamp of the snapshot), `data` the job's snapshot, and `progress` at the top as well."""
    return {
        "type": "init",
        "jobId": job.pk,
        "jobName": job.name,
        "spaceId": space_public_id,
        "status": job.status,
        "attemptNumber": queries.attempt(job.attempt_number),
        "progress": job.progress,
        "seq": seq,
        "timestamp": _now(),
        "data": job_snapshot(job, job.progress),
    }


def connected_message(
    space_public_id: str, seq: int, instance: str, *, missed: bool, counts: dict[str, int]
) -> dict[str, Any]:
    """The space stream's `connected`; `data` repeats what is not an envelope field."""
    return {
        "type": "connected",
        "spaceId": space_public_id,
        "seq": seq,
        "streamInstanceId": instance,
        "missed": missed,
        "counts": counts,
        "timestamp": _now(),
        "data": {"streamInstanceId": instance, "missed": missed, "counts": counts},
    }


def counts_message(seq: int, counts: dict[str, int]) -> dict[str, Any]:
    """Counts that changed without an event (retention, a recount)."""
    return {
        "type": "counts",
        "seq": seq,
        "counts": counts,
        "timestamp": _now(),
        "data": {"counts": counts},
    }


PONG = {"type": "pong", "data": {}}


def public_event(envelope: dict) -> dict[str, Any] | None:
    """The progress-only view of an event envelope, or None when that viewer gets nothing."""
    kind = envelope["type"]
    if kind not in PUBLIC_EVENT_TYPES:
        return None
    view = {name: envelope.get(name) for name in PUBLIC_EVENT_FIELDS}
    view["data"] = _only(envelope.get("data"), PUBLIC_PROGRESS_FIELDS) if kind == "progress" else {}
    return view


def recheck_seconds() -> float:
    """How often an open socket re-checks its key or membership (revocation closes it)."""
    return float(getattr(settings, "STREAM_RECHECK_SECONDS", 30))


def _metric(kind: str, delta: int) -> None:
    if delta > 0:
        STREAM_CONNECTIONS.labels(kind=kind).inc()
    else:
        STREAM_CONNECTIONS.labels(kind=kind).dec()


def _utf8_size(text: str) -> int:
    """Bytes of TEXT in UTF-8; a lone surrogate (refused later, by jsonsafe) counts 3."""
    return len(text.encode("utf-8", "surrogatepass"))


def _close_reason(text: str) -> str:
    """TEXT as a close reason: printable ASCII (what the client sent may be quoted in it), short
    enough for a close frame."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


# --- database helpers (run in the ORM's thread) ----------------------------------------------


@database_sync_to_async
def _key_active(key_id: int) -> bool:
    return ApiKey.objects.filter(pk=key_id, revoked_at__isnull=True).exists()


@database_sync_to_async
def _is_member(user_id: int, organization_id: int) -> bool:
    return access.is_member(user_id, organization_id)


@database_sync_to_async
def _user_active(user) -> bool:
    # The scope's user is a lazy object; reading it here keeps the query off the event loop.
    return bool(user is not None and user.is_authenticated and user.is_active)


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """What both streams share: auth bookkeeping, ordered emission, pings, periodic re-checks."""

    kind = "stream"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups_joined: list[str] = []
        self.key: ApiKey | None = None
        self.user_id: int | None = None
        self.organization_id: int | None = None
        self.space_id: int | None = None
        self.space_public_id = ""
        self.last_seq = 0
        self.live_since_check = False
        self.watcher: asyncio.Task | None = None
        self.counted = False
        self.relayed = False
        # Held while emitting, so the periodic catch-up and live messages never interleave.
        self.emit_lock = asyncio.Lock()

    # -- connection lifecycle -----------------------------------------------------------------

    async def reject(self, code: int) -> None:
        # Accept first: a close before accept is an HTTP 403 and the client never sees the code.
        await self.accept()
        await self.close(code=code)

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def started(self, space_seq: int) -> None:
        """The first messages are sent; SPACE_SEQ is the space's seq this stream has read up
        to, from which the relay (in-memory layer only) brings other processes' events."""
        self.counted = True
        _metric(self.kind, +1)
        self.watcher = asyncio.create_task(self.watch())
        streams.relay.watch(self.space_id, space_seq)
        self.relayed = True

    async def disconnect(self, code) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.watcher
        for group in self.groups_joined:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(group, self.channel_name)
        if self.relayed:
            self.relayed = False
            streams.relay.unwatch(self.space_id)
        if self.counted:
            self.counted = False
            _metric(self.kind, -1)

    async def authenticate(self) -> tuple[ApiKey | None, Any, int | None]:
        """(key, session user, close code). A code means: refuse with it."""
        if self.scope.get("token_given"):
            if self.scope.get("token_throttled"):
                return None, None, CLOSE_THROTTLED
            key = self.scope.get("api_key")
            if key is None:
                return None, None, CLOSE_UNAUTHORIZED
            return key, None, None
        user = self.scope.get("user")
        if not await _user_active(user):
            return None, None, None
        return None, user, None

    # -- incoming frames ----------------------------------------------------------------------

    async def websocket_receive(self, message) -> None:
        """A client message: JSON text of at most MAX_FRAME_BYTES, else the socket is closed.

        Every way a client can get this wrong is the client's error, answered with a close code
        (docs/streams.md, "Client messages") and one log line, never an exception (which the
        server would log with a traceback and answer with 1011)."""
        text = message.get("text")
        if text is None:
            await self.refuse_message(
                CLOSE_BAD_MESSAGE, "binary frame", "binary frames are not read"
            )
            return
        # Characters first: a text of more characters than the cap has more bytes too.
        if len(text) > MAX_FRAME_BYTES or _utf8_size(text) > MAX_FRAME_BYTES:
            await self.refuse_message(CLOSE_TOO_BIG, "message too big")  # the code says it all
            return
        try:
            content = jsonsafe.loads(text)
        except jsonsafe.UnsafeJSON as exc:
            await self.refuse_message(CLOSE_BAD_MESSAGE, "not JSON", f"not JSON: {exc}")
            return
        await self.receive_json(content)

    async def refuse_message(self, code: int, what: str, reason: str = "") -> None:
        """Close for a bad client message. The log line names the kind of fault only (WHAT),
        never the client's text; the close reason (REASON) tells the client the details."""
        log.info(
            "stream closed with %s: %s",
            code,
            what,
            extra={"stream": self.kind, "close_code": code, "space": self.space_public_id},
        )
        await self.close(code=code, reason=_close_reason(reason) or None)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json(PONG)
        # Anything else is ignored: the streams are one-way.

    # -- periodic re-check --------------------------------------------------------------------

    async def watch(self) -> None:
        """Re-check the credentials, refresh group membership, and catch up when quiet."""
        try:
            while True:
                await asyncio.sleep(recheck_seconds())
                code = await self.recheck()
                if code is not None:
                    await self.close(code=code)
                    return
                # Group membership expires in Redis (and is lost if Redis restarts): renew it.
                for group in self.groups_joined:
                    with contextlib.suppress(Exception):
                        await self.channel_layer.group_add(group, self.channel_name)
                if not self.live_since_check:
                    # No live message lately: maybe fan-out was down. Read what was missed.
                    async with self.emit_lock:
                        await self.catch_up()
                self.live_since_check = False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream watcher failed")

    async def recheck(self) -> int | None:
        if not await self.target_exists():
            return CLOSE_NOT_FOUND  # the space was deleted, or retention removed the job
        if self.key is not None:
            return None if await _key_active(self.key.pk) else CLOSE_UNAUTHORIZED
        if self.user_id is not None and self.organization_id is not None:
            return None if await _is_member(self.user_id, self.organization_id) else CLOSE_FORBIDDEN
        return None

    async def catch_up(self) -> None:
        raise NotImplementedError

    async def target_exists(self) -> bool:
        raise NotImplementedError

    # -- emission -----------------------------------------------------------------------------

    async def emit(self, envelope: dict) -> None:
        """Send one event to the client (subclasses filter)."""
        await self.send_json(envelope)

    async def emit_from_db(self, envelopes: list[dict]) -> None:
        for envelope in envelopes:
            if envelope["seq"] > self.last_seq:
                await self.emit(envelope)
                self.last_seq = envelope["seq"]


class SpaceStreamConsumer(StreamConsumer):
    """/api/v1/realtime/spaces/{spaceId}?token=&since=&streamInstanceId="""

    kind = "space"

    async def connect(self) -> None:
        key, user, code = await self.authenticate()
        if code is not None:
            await self.reject(code)
            return
        if key is None and user is None:
            await self.reject(CLOSE_UNAUTHORIZED)
            return
        if key is None and not self.scope.get("origin_ok"):
            # A session from a page on another site: never act on its cookie.
            await self.reject(CLOSE_FORBIDDEN)
            return

        public_id = self.scope["url_route"]["kwargs"]["space_id"]
        space = await self.get_space(public_id)
        if key is not None:
            if space is None or key.space_id != space.pk or not key.has_scope(scopes.READ):
                await self.reject(CLOSE_FORBIDDEN)
                return
        else:
            if space is None:
                await self.reject(CLOSE_NOT_FOUND)
                return
            if not await _is_member(user.pk, space.organization_id):
                await self.reject(CLOSE_FORBIDDEN)
                return
            self.user_id = user.pk
            self.organization_id = space.organization_id
        self.key = key
        self.space_id = space.pk
        self.space_public_id = space.public_id
        instance = streams.stream_instance_id(space.public_id)

        await self.join(streams.space_group(space.public_id))
        await self.accept()
        # Read after joining the group: anything numbered later arrives live.
        seq, counts = await self.read_state()
        self.last_seq = seq

        params = query_params(self.scope)
        # None when not given; -1 when not a non-negative integer (the client must refetch).
        since = int_param(params, "since", invalid=-1)
        missed = False
        replay_from = None
        if since is not None:
            if since < 0 or since > seq or params.get("streamInstanceId") != instance:
                missed = True
            elif since < seq:
                if await self.range_complete(since, seq):
                    replay_from = since
                else:
                    missed = True
        await self.send_json(
            connected_message(space.public_id, seq, instance, missed=missed, counts=counts)
        )
        if replay_from is not None:
            # Replayed events carry counts as live ones do, counted back from `connected`'s.
            start = await self.counts_before(replay_from, seq, counts)
            async for page in self.pages(replay_from, seq, start):
                for envelope in page:
                    await self.send_json(envelope)
        await self.started(seq)

    @database_sync_to_async
    def get_space(self, public_id: str) -> Space | None:
        if len(public_id) > 26:
            return None
        return (
            Space.objects.filter(public_id=public_id)
            .only("id", "public_id", "organization_id")
            .first()
        )

    @database_sync_to_async
    def read_state(self) -> tuple[int, dict[str, int]]:
        return streams.space_state(self.space_id)

    @database_sync_to_async
    def counts_before(self, after: int, anchor_seq: int, anchor: dict[str, int]) -> dict:
        return streams.counts_before(self.space_id, after, anchor_seq, anchor)

    @database_sync_to_async
    def counts_at(self, seq: int) -> dict[str, int]:
        """The counts as of SEQ, counted back from the space's current ones."""
        top, counts = streams.space_state(self.space_id)
        return streams.counts_before(self.space_id, seq, top, counts)

    @database_sync_to_async
    def range_complete(self, after: int, upto: int) -> bool:
        """True when every event with after < seq <= upto is stored and there are not too many
        to replay (retention may have deleted some with their jobs)."""
        if upto - after > replay_limit():
            return False
        stored = JobEvent.objects.filter(
            space_id=self.space_id, seq__gt=after, seq__lte=upto
        ).count()
        return stored == upto - after

    @database_sync_to_async
    def read_page(self, after: int, upto: int, counts: dict[str, int]) -> list[dict]:
        events = streams.stored_space_events(
            self.space_id, self.space_public_id, after, upto, counts, REPLAY_PAGE
        )
        return [event.space_envelope for event in events]

    async def pages(self, after: int, upto: int, counts: dict[str, int]):
        """The stored events with after < seq <= upto, in seq order, REPLAY_PAGE at a time;
        COUNTS (as of seq AFTER) is carried through them, so count-changing ones carry theirs."""
        while after < upto:
            page = await self.read_page(after, upto, counts)
            if not page:
                return
            yield page
            after = page[-1]["seq"]

    @database_sync_to_async
    def target_exists(self) -> bool:
        return Space.objects.filter(pk=self.space_id).exists()

    @database_sync_to_async
    def current_seq(self) -> int:
        return Space.objects.values_list("event_seq", flat=True).get(pk=self.space_id)

    async def fill_to(self, upto: int) -> None:
        """Emit the stored events up to seq UPTO that this client has not had."""
        if upto <= self.last_seq:
            return
        if upto - self.last_seq > replay_limit():
            await self.send_missed(upto)
            return
        # Events deleted with their jobs meanwhile are simply not there: send what is.
        counts = await self.counts_at(self.last_seq)
        async for page in self.pages(self.last_seq, upto, counts):
            await self.emit_from_db(page)
        self.last_seq = upto

    async def send_missed(self, seq: int) -> None:
        """Too much to replay: tell the client to refetch, with fresh counts."""
        current, counts = await self.read_state()
        self.last_seq = max(seq, current)
        await self.send_json(
            connected_message(
                self.space_public_id,
                self.last_seq,
                streams.stream_instance_id(self.space_public_id),
                missed=True,
                counts=counts,
            )
        )

    async def catch_up(self) -> None:
        await self.fill_to(await self.current_seq())

    # -- channel-layer handlers ---------------------------------------------------------------

    async def stream_event(self, message: dict) -> None:
        envelope = message["event"]
        seq = envelope["seq"]
        self.live_since_check = True
        async with self.emit_lock:
            if seq <= self.last_seq:
                return  # already sent (replay, or a gap filled from the database)
            if seq > self.last_seq + 1:
                # An earlier message is late or lost; its event is stored (seq order is
                # commit order), so read it rather than skip it.
                await self.fill_to(seq - 1)
                if seq <= self.last_seq:
                    return
            await self.send_json(envelope)
            self.last_seq = seq

    async def stream_counts(self, message: dict) -> None:
        """Counts changed without an event (retention deleted jobs, or a recount)."""
        async with self.emit_lock:
            if message["seq"] < self.last_seq:
                return  # later events already carried counts that include this change
            await self.fill_to(message["seq"])
            await self.send_json(counts_message(message["seq"], message["counts"]))


class JobStreamConsumer(StreamConsumer):
    """/api/v1/realtime/{jobId}?token=  (full events with jobs:read, else progress only)"""

    kind = "job"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.job_id = ""
        self.full = False

    async def connect(self) -> None:
        key, user, code = await self.authenticate()
        if code is not None:
            await self.reject(code)
            return
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        job = await self.get_job(job_id)
        if job is None:
            await self.reject(CLOSE_NOT_FOUND)
            return
        if key is not None:
            if key.space_id != job.space_id:
                await self.reject(CLOSE_FORBIDDEN)
                return
            if key.has_scope(scopes.READ):
                self.full = True
            elif not key.has_scope(scopes.READ_PROGRESS):
                await self.reject(CLOSE_FORBIDDEN)
                return
        elif (
            user is not None
            and self.scope.get("origin_ok")
            and await _is_member(user.pk, job.space.organization_id)
        ):
            # A member's session sees everything; anyone else gets the public progress view,
            # which needs no credentials at all.
            self.full = True
            self.user_id = user.pk
            self.organization_id = job.space.organization_id
        self.key = key
        self.job_id = job.pk
        self.space_id = job.space_id
        self.space_public_id = job.space.public_id

        await self.join(streams.job_group(job.pk))
        await self.accept()
        # After joining: whatever is numbered from now on arrives live.
        job, self.last_seq, space_seq = await self.read_job()
        if self.full:
            init = full_init(job, self.space_public_id, self.last_seq)
        else:
            init = public_init(job)
        await self.send_json(init)
        await self.started(space_seq)

    @database_sync_to_async
    def get_job(self, job_id: str) -> Job | None:
        if len(job_id) > 26:
            return None
        return (
            Job.objects.select_related("space")
            .only("id", "space_id", "space__public_id", "space__organization_id")
            .filter(pk=job_id)
            .first()
        )

    @database_sync_to_async
    def read_job(self) -> tuple[Job, int, int]:
        """(the job, the seq of its latest event, the space's seq), read in this order."""
        # The space's seq first: every event of the job up to it is then in the job's read.
        space_seq = Space.objects.values_list("event_seq", flat=True).get(pk=self.space_id)
        job = Job.objects.only("id", "name", "status", "progress", "attempt_number").get(
            pk=self.job_id
        )
        last = (
            JobEvent.objects.filter(job_id=self.job_id, seq__isnull=False).aggregate(m=Max("seq"))[
                "m"
            ]
            or 0
        )
        return job, last, space_seq

    @database_sync_to_async
    def read_after(self, after: int, before: int | None = None) -> list[dict]:
        events = JobEvent.objects.filter(job_id=self.job_id, seq__gt=after)
        if before is not None:
            events = events.filter(seq__lt=before)
        return queries.stored_envelopes(events, self.space_public_id, limit=replay_limit())

    async def emit(self, envelope: dict) -> None:
        if self.full:
            await self.send_json(envelope)
            return
        view = public_event(envelope)
        if view is not None:
            await self.send_json(view)

    async def catch_up(self) -> None:
        await self.emit_from_db(await self.read_after(self.last_seq))

    @database_sync_to_async
    def target_exists(self) -> bool:
        return Job.objects.filter(pk=self.job_id).exists()

    async def stream_event(self, message: dict) -> None:
        envelope = message["event"]
        seq = envelope["seq"]
        self.live_since_check = True
        async with self.emit_lock:
            if seq <= self.last_seq:
                return
            previous = message.get("prev") or 0
            if previous > self.last_seq:
                # The job's previous event has not reached this socket: read it.
                await self.emit_from_db(await self.read_after(self.last_seq, before=seq))
            await self.emit(envelope)
            self.last_seq = seq


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: close with 4404 instead of an error in the server log."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
