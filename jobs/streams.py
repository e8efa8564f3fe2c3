"""Per-space event sequencing, status counts and fan-out to the channel layer.

A transition inserts its job events with `seq` NULL and never touches the space row, so
transitions of one space run in parallel. After the transition commits, `publish_space()` runs
one short transaction per space that locks the space row (FOR NO KEY UPDATE), numbers every
committed event of the space that has no seq yet (in id order), applies their status moves to
`Space.status_counts` and commits; only then are the envelopes sent to the channel layer.

Why this cannot skip an event: the space row stays locked until the numbering commits, so seq
order is the order in which numberings commit. A client that saw seq N was sent N after its
numbering committed, hence after every numbering that handed out a smaller seq: every event with
seq < N is already stored, and a replay from `since=N` finds everything that comes later.
Numbering all pending events of the space (not only the caller's) in id order also keeps the
events of one job in the order their transitions committed, since those are serialized by the
job row lock and so get increasing ids.

Events whose numbering never ran (the process died right after the transition committed) are
picked up by the next numbering of the same space, or by `sequence_stragglers()`, which the
scheduler loop calls.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, Subquery
from django.utils import timezone

from spaces.models import Space

from . import queries
from .models import Job, JobEvent

log = logging.getLogger(__name__)

# Events numbered in one transaction; a larger backlog (stragglers) takes several rounds.
BATCH_SIZE = 1000
# Rounds one publish may run (each numbers whatever is pending then) before leaving the rest
# to the next publisher or the scheduler's straggler pass.
MAX_ROUNDS = 20
# Namespace of the PostgreSQL advisory lock that makes one numbering per space run at a time.
ADVISORY_NAMESPACE = 0x5E0
# After a failed send, fan-out is skipped for this long, so a dead Redis costs at most one
# bounded wait per process per pause instead of one per request.
FANOUT_PAUSE_SECONDS = 5.0

_GROUP_NAME = re.compile(r"[A-Za-z0-9.\-]{1,99}")
_fanout_paused_until = 0.0


# --- names -----------------------------------------------------------------------------------


def group_name(kind: str, ident: str) -> str:
    """The channel-layer group of a space or job stream ("space.<id>", "job.<id>").

    Channels allows ASCII alphanumerics, hyphens and periods, under 100 characters; ids here
    are ULIDs, and anything else is refused rather than silently mangled.
    """
    name = f"{kind}.{ident}"
    if not _GROUP_NAME.fullmatch(name):
        raise ValueError(f"Not a valid group name: {name!r}")
    return name


def space_group(space_public_id: str) -> str:
    return group_name("space", space_public_id)


def job_group(job_id: str) -> str:
    return group_name("job", job_id)


def stream_instance_id(space_public_id: str) -> str:
    """Names the seq numbering a client's `since` refers to.

    Seq lives in the database, so it survives restarts of any process: the id is derived from
    the space and STREAM_EPOCH only. Bump STREAM_EPOCH after restoring the database from a
    backup (seq numbers may then be handed out again) and every client refetches.
    """
    return f"{space_public_id}.{getattr(settings, 'STREAM_EPOCH', 1)}"


# --- counts ----------------------------------------------------------------------------------


def status_move(type: str, previous_status: str | None, status: str) -> tuple[str | None, str]:
    """(from, to) when an event changes the per-status counts, else None.

    `created` adds a job; any other event moves one when its status differs from the previous
    one. Events that do not change the status (progress, logs, ...) carry no previous_status.
    """
    if type == "created":
        return (None, status)
    if previous_status and previous_status != status:
        return (previous_status, status)
    return None


def recount_space(space: Space | int, *, announce: bool = True) -> dict[str, int]:
    """Recompute a space's counts from the Job table (repair, or counts never computed).

    Costs a scan of the space's jobs: for repairs and first use, never per event. With
    ANNOUNCE the new counts go to the space's open streams.
    """
    space_id = space if isinstance(space, int) else space.pk
    with transaction.atomic():
        row = _lock_space(space_id)
        counts = queries.counts_from_jobs(space_id)
        Space.objects.filter(pk=space_id).update(status_counts=counts)
        seq = row.event_seq
    if announce:
        fan_out([(space_group(row.public_id), _counts_message(seq, counts))])
    return counts


def adjust_counts(space_id: int, deltas: dict[str, int]) -> None:
    """Apply DELTAS ({status: -n}) to a space's counts: retention calls it for deleted jobs."""
    with transaction.atomic():
        row = _lock_space(space_id)
        counts = queries.stored_counts(row.status_counts)
        if counts is None:
            return  # computed from the Job table on first use, deletions included
        for status, delta in deltas.items():
            if status in counts:
                counts[status] = max(0, counts[status] + int(delta))
        Space.objects.filter(pk=space_id).update(status_counts=counts)
        seq = row.event_seq
    fan_out([(space_group(row.public_id), _counts_message(seq, counts))])


def _counts_message(seq: int, counts: dict[str, int]) -> dict:
    return {"type": "stream.counts", "seq": seq, "counts": dict(counts)}


# --- stored events with their counts (replay, gap filling, the relay) -------------------------
#
# A live event carries the counts the numbering computed for it. An event read back from the
# database carries the same: the counts at a known seq (the space row's event_seq and
# status_counts, stored together by each numbering) minus the moves of the events after it give
# the counts before the first event read, and each event's own move is then applied forward.
# Exact, except that a change without an event inside the range (retention deleting finished
# jobs) shows from the start of the range instead of from its place in it.


def moves_between(space_id: int, after: int, upto: int) -> dict[str, int]:
    """The net change of the per-status counts made by the events with after < seq <= upto."""
    if upto <= after:
        return {}
    moved = Q(type="created") | (
        Q(previous_status__isnull=False) & ~Q(previous_status="") & ~Q(previous_status=F("status"))
    )
    # On the (space, seq) index; a handful of groups, whatever the number of events.
    groups = (
        JobEvent.objects.filter(moved, space_id=space_id, seq__gt=after, seq__lte=upto)
        .values("type", "previous_status", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    delta: dict[str, int] = {}
    for group in groups:
        move = status_move(group["type"], group["previous_status"], group["status"])
        if move is None:
            continue
        before, now = move
        if before is not None:
            delta[before] = delta.get(before, 0) - group["n"]
        delta[now] = delta.get(now, 0) + group["n"]
    return delta


def counts_before(
    space_id: int, after: int, anchor_seq: int, anchor_counts: dict[str, int]
) -> dict[str, int]:
    """The counts as of seq AFTER, from ANCHOR_COUNTS (the counts as of ANCHOR_SEQ >= AFTER)."""
    counts = dict(anchor_counts)
    for status, n in moves_between(space_id, after, anchor_seq).items():
        counts[status] = max(0, counts.get(status, 0) - n)
    return counts


def space_state(space_id: int) -> tuple[int, dict[str, int]]:
    """(the space's latest seq, the counts as of that seq), read together from the space row."""
    space = Space.objects.only("event_seq", "status_counts").get(pk=space_id)
    counts = queries.stored_counts(space.status_counts)
    if counts is None:
        counts = recount_space(space_id, announce=False)
    return space.event_seq, counts


@dataclass
class StoredEvent:
    envelope: dict  # as the job stream sends it
    space_envelope: dict  # with `counts` when the event moved a job between statuses
    prev: int | None = None  # seq of the job's previous event (the job stream's gap check)


def stored_space_events(
    space_id: int,
    space_public_id: str,
    after: int,
    upto: int,
    counts: dict[str, int],
    limit: int,
    *,
    with_prev: bool = False,
) -> list[StoredEvent]:
    """Up to LIMIT stored events with after < seq <= upto, in seq order.

    COUNTS holds the counts as of seq AFTER (counts_before) and is advanced, in place, through
    every event returned, so the next page continues from it. WITH_PREV also reads each
    event's `prev` (one probe on the (job, id) index per event).
    """
    rows = (
        JobEvent.objects.filter(space_id=space_id, seq__gt=after, seq__lte=upto)
        .order_by("seq")
        .values(*queries.ENVELOPE_FIELDS, "previous_status", job_name=F("job__name"))
    )
    if with_prev:
        # Within a job, id order is seq order (transitions hold the job's row lock).
        rows = rows.annotate(
            prev=Subquery(
                JobEvent.objects.filter(
                    job_id=OuterRef("job_id"), id__lt=OuterRef("id"), seq__isnull=False
                )
                .order_by("-id")
                .values("seq")[:1]
            )
        )
    result = []
    for row in rows[:limit]:
        envelope = queries.envelope(row, space_public_id)
        space_envelope = envelope
        move = status_move(row["type"], row["previous_status"], row["status"])
        if move is not None:
            before, now = move
            if before is not None:
                counts[before] = max(0, counts.get(before, 0) - 1)
            counts[now] = counts.get(now, 0) + 1
            space_envelope = {**envelope, "counts": dict(counts)}
        result.append(StoredEvent(envelope, space_envelope, row.get("prev")))
    return result


# --- sequencing ------------------------------------------------------------------------------


@dataclass
class Sequenced:
    """What one numbering transaction produced: channel-layer messages to send after commit."""

    space_public_id: str
    messages: list[tuple[str, dict]] = field(default_factory=list)
    count: int = 0
    # The seq range handed out (contiguous), for the relay's bookkeeping (LocalRelay.sent).
    first_seq: int = 0
    last_seq: int = 0


def _lock_space(space_id: int) -> Space:
    # NO KEY UPDATE, not UPDATE: every insert of a job or event takes KEY SHARE on the space
    # row (the foreign key), and a plain FOR UPDATE would make the numbering wait for every open
    # transition of the space, and every new transition wait for the numbering.
    return (
        Space.objects.select_for_update(no_key=True)
        .only("id", "public_id", "event_seq", "status_counts")
        .get(pk=space_id)
    )


class Busy(Exception):
    """Another numbering of the space is running; it will take our events (see publish_space)."""


def _try_numbering_lock(space_id: int) -> bool:
    """Take the space's numbering lock for this transaction, without waiting (PostgreSQL).

    Elsewhere (SQLite) transactions are serialized anyway, so this always succeeds.
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)",
            [ADVISORY_NAMESPACE, space_id % 2**31],
        )
        return bool(cursor.fetchone()[0])


def sequence_space(
    space_id: int, limit: int = BATCH_SIZE, *, wait: bool = True
) -> Sequenced | None:
    """Number up to LIMIT committed, unnumbered events of a space, in one short transaction.

    Without WAIT, raises Busy instead of queueing behind another numbering of the space.

    Round trips on PostgreSQL: the numbering lock, the space row and the highest stored seq in
    one statement; the pending events with their job's name and the job's last seq in one;
    the seq of every event and the space's counter and counts in one. It runs after every
    commit, so each statement saved here is saved on every API call.
    """
    with transaction.atomic():
        locked = _lock_for_numbering(space_id, wait)
        if locked is None:
            raise Busy()
        space, top = locked
        # A new statement after the lock: it sees every numbering that committed before.
        pending = _pending_events(space_id, limit)
        if not pending:
            return None

        last = space.event_seq
        counts = space.status_counts
        # Guard against a stale full save of the space row (a form saving every field) that
        # wrote back an older event_seq and status_counts: seq must never be handed out twice.
        if top > last:
            log.warning(
                "space event_seq was behind its events; recounting", extra={"space": space_id}
            )
            last, counts = top, None
        counts = queries.stored_counts(counts)
        if counts is None:
            counts = queries.counts_from_jobs(space_id)

        # The last numbered event of each job (read with the pending rows), so a job stream can
        # tell a gap from a sequence. Within a job, id order is commit order (transitions hold
        # the job row lock), so only a job's first pending event needs the stored value.
        previous: dict[str, int | None] = {}
        for row in pending:
            previous.setdefault(row["job_id"], row.pop("prev"))

        result = Sequenced(space_public_id=space.public_id)
        space_group_name = space_group(space.public_id)
        numbered: list[tuple[int, int]] = []
        for row in pending:
            last += 1
            row["seq"] = last
            numbered.append((row["id"], last))
            envelope = queries.envelope(row, space.public_id)
            space_envelope = envelope
            move = status_move(row["type"], row["previous_status"], row["status"])
            if move is not None:
                before, after = move
                if before is not None:
                    counts[before] = max(0, counts.get(before, 0) - 1)
                counts[after] = counts.get(after, 0) + 1
                space_envelope = {**envelope, "counts": dict(counts)}
            result.messages.append(
                (space_group_name, {"type": "stream.event", "event": space_envelope})
            )
            result.messages.append(
                (
                    job_group(row["job_id"]),
                    {
                        "type": "stream.event",
                        "event": envelope,
                        "prev": previous.get(row["job_id"]),
                    },
                )
            )
            previous[row["job_id"]] = last
        _store_numbering(space_id, numbered, last, counts)
        result.count = len(pending)
        result.first_seq, result.last_seq = numbered[0][1], last
    return result


_SPACE_COLUMNS = ("id", "public_id", "event_seq", "status_counts")


def _lock_for_numbering(space_id: int, wait: bool) -> tuple[Space, int] | None:
    """(locked space row, highest stored seq of the space), or None when another numbering
    holds the lock and WAIT is false."""
    if connection.vendor != "postgresql":
        # SQLite serializes transactions anyway: the lock is always free.
        space = _lock_space(space_id)
        top = (
            JobEvent.objects.filter(space_id=space_id, seq__isnull=False).aggregate(m=Max("seq"))[
                "m"
            ]
            or 0
        )
        return space, top
    spaces = connection.ops.quote_name(Space._meta.db_table)
    events = connection.ops.quote_name(JobEvent._meta.db_table)
    # The advisory lock sits in the WHERE clause: it is evaluated for the one row the primary
    # key finds, and when it is taken by another numbering no row comes back (Busy). The row
    # lock (NO KEY UPDATE, see _lock_space) is only ever contended by other numberings, which
    # hold the advisory lock, and by short settings updates. The MAX(seq) subquery uses the
    # (space, seq) index: one probe from the top.
    guard = "TRUE" if wait else "pg_try_advisory_xact_lock(%s, %s)"
    params: list[Any] = [] if wait else [ADVISORY_NAMESPACE, space_id % 2**31]
    sql = f"""
        SELECT s.id, s.public_id, s.event_seq, s.status_counts,
               (SELECT MAX(e.seq) FROM {events} e WHERE e.space_id = s.id AND e.seq IS NOT NULL)
          FROM {spaces} s
         WHERE s.id = %s AND {guard}
           FOR NO KEY UPDATE OF s
    """  # noqa: S608 - table names come from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [space_id, *params])
        row = cursor.fetchone()
    if row is None:
        if not wait and Space.objects.filter(pk=space_id).exists():
            return None
        raise Space.DoesNotExist(space_id)
    space = Space(id=row[0], public_id=row[1], event_seq=row[2], status_counts=row[3])
    if isinstance(space.status_counts, str):  # a driver that does not decode jsonb
        space.status_counts = json.loads(space.status_counts)
    return space, row[4] or 0


# The columns of a pending event row, as both queries below return them.
_PENDING_COLUMNS = (
    "id",
    "job_id",
    "type",
    "status",
    "previous_status",
    "data",
    "attempt_number",
    "created_at",
    "job_name",
    "prev",
)


def _pending_events(space_id: int, limit: int) -> list[dict]:
    """The space's unnumbered events in id order, with job_name and the job's last seq."""
    if connection.vendor == "postgresql":
        return _pending_events_postgres(space_id, limit)
    return list(
        JobEvent.objects.filter(space_id=space_id, seq__isnull=True)
        .order_by("id")
        .values(
            *_PENDING_COLUMNS[:-2],
            job_name=F("job__name"),
            # On the (job, id) index: one probe per pending event.
            prev=Subquery(
                JobEvent.objects.filter(job_id=OuterRef("job_id"), seq__isnull=False)
                .order_by("-id")
                .values("seq")[:1]
            ),
        )[:limit]
    )


def _pending_events_postgres(space_id: int, limit: int) -> list[dict]:
    # The query above in SQL: it runs once per numbering round, and compiling it through the
    # ORM cost more than running it.
    events = connection.ops.quote_name(JobEvent._meta.db_table)
    jobs = connection.ops.quote_name(Job._meta.db_table)
    sql = f"""
        SELECT e.id, e.job_id, e.type, e.status, e.previous_status, e.data, e.attempt_number,
               e.created_at, j.name,
               (SELECT p.seq FROM {events} p
                 WHERE p.job_id = e.job_id AND p.seq IS NOT NULL
                 ORDER BY p.id DESC LIMIT 1)
          FROM {events} e JOIN {jobs} j ON j.id = e.job_id
         WHERE e.space_id = %s AND e.seq IS NULL
         ORDER BY e.id
         LIMIT %s
    """  # noqa: S608 - table names come from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [space_id, limit])
        rows = [dict(zip(_PENDING_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        # Django loads jsonb as text (JSONField decodes it); so does this raw query.
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
    return rows


def _any_pending(space_id: int) -> bool:
    if connection.vendor != "postgresql":
        return JobEvent.objects.filter(space_id=space_id, seq__isnull=True).exists()
    events = connection.ops.quote_name(JobEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {events} WHERE space_id = %s AND seq IS NULL LIMIT 1",  # noqa: S608
            [space_id],
        )
        return cursor.fetchone() is not None


def _store_numbering(
    space_id: int, numbered: list[tuple[int, int]], last: int, counts: dict[str, int]
) -> None:
    """Write each event's seq and the space's counter and counts."""
    if connection.vendor != "postgresql":
        JobEvent.objects.bulk_update([JobEvent(id=i, seq=s) for i, s in numbered], ["seq"])
        Space.objects.filter(pk=space_id).update(event_seq=last, status_counts=counts)
        return
    spaces = connection.ops.quote_name(Space._meta.db_table)
    events = connection.ops.quote_name(JobEvent._meta.db_table)
    # One statement: the events' update runs as a data-modifying CTE (always executed in full).
    sql = f"""
        WITH numbered AS (
            UPDATE {events} e SET seq = v.seq
              FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, seq)
             WHERE e.id = v.id
            RETURNING 1
        )
        UPDATE {spaces} SET event_seq = %s, status_counts = %s::jsonb WHERE id = %s
    """  # noqa: S608 - table names come from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                [i for i, _ in numbered],
                [s for _, s in numbered],
                last,
                json.dumps(counts),
                space_id,
            ],
        )


def publish_space(space_id: int) -> int:
    """Number the space's pending events and send them out. Never raises; returns how many.

    Publishers do not queue behind each other: one whose numbering lock is taken returns at
    once, because the holder, after each commit, runs another round that numbers everything
    pending by then. That round starts after the holder released the lock, hence after this
    publisher's transition committed (it committed before finding the lock taken), so the
    events are seen either by the holder's next round or by whoever takes the lock first.
    """
    total = 0
    for _ in range(MAX_ROUNDS):
        try:
            batch = sequence_space(space_id, wait=False)
        except Busy:
            return total
        except Exception as exc:
            # The rows are stored; the next numbering of this space or the straggler pass
            # picks them up.
            log.warning("event sequencing failed", extra={"space": space_id, "error": repr(exc)})
            return total
        if batch is None:
            return total
        total += batch.count
        if fan_out(batch.messages):
            relay.sent(space_id, batch.first_seq, batch.last_seq)
        # After the commit (lock released): anything a skipped publisher left for us?
        if not _any_pending(space_id):
            return total
    return total


def on_events_committed(sender, events: Iterable[JobEvent], **kwargs) -> None:
    """event_committed receiver: number and send the committed events, space by space.

    With STREAM_SEQUENCER = "thread" (the default) the spaces go to this process's sequencer
    thread and the request returns at once; "inline" numbers them here, before returning.
    """
    space_ids = {event.space_id for event in events}
    if getattr(settings, "STREAM_SEQUENCER", "thread") == "inline":
        for space_id in sorted(space_ids):
            publish_space(space_id)
        return
    sequencer.submit(space_ids, _server_loop())


class Sequencer:
    """Numbers and fans out committed events on one thread per process, off the request path.

    A commit only adds its space to a set and wakes the thread: the request does not wait for
    the numbering transaction or the channel-layer sends. The thread takes the whole set at
    once, so commits that land while it works are coalesced into its next round, and
    `publish_space` numbers every pending event of a space in one transaction, whoever
    committed it. The guarantees stay those of `publish_space` (seq in commit order, never
    skipped); only the moment changes. Events of a process that dies before its thread got to
    them are numbered by the next commit in the space or by `sequence_stragglers()`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._spaces: set[int] = set()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._busy = False
        # The server's event loop: the in-memory channel layer is only sent to from there.
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, space_ids: Iterable[int], loop: asyncio.AbstractEventLoop | None) -> None:
        with self._lock:
            self._spaces.update(space_ids)
            if loop is not None:
                self._loop = loop
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # None yet, forked since (the thread did not come along), or it died.
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="stream-sequencer", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def idle(self) -> bool:
        """Nothing submitted is waiting or being numbered (tests, graceful stop)."""
        with self._lock:
            return not self._spaces and not self._busy

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every submitted space is numbered and sent; False if TIMEOUT passed."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _run(self) -> None:
        last_round = 0.0
        while True:
            self._wake.wait()
            if time.monotonic() - last_round < BUSY_WITHIN_SECONDS:
                # Busy: let a few more commits land, so one numbering transaction and one
                # round of sends serve them all. An idle process numbers at once.
                time.sleep(COALESCE_SECONDS)
            with self._lock:
                self._wake.clear()
                spaces, self._spaces = self._spaces, set()
                self._busy = bool(spaces)
                loop = self._loop
            try:
                _sequencer_thread.loop = loop
                for space_id in sorted(spaces):
                    publish_space(space_id)
            except Exception:  # publish_space never raises; a bug here must not stop the thread
                log.exception("stream sequencer round failed")
            finally:
                # Hand the connection back (to the pool, under PostgreSQL) between rounds, so a
                # restarted database costs one failed round, not a broken thread.
                connection.close()
                last_round = time.monotonic()
                with self._lock:
                    self._busy = False


# A sequencer woken within BUSY_WITHIN_SECONDS of its last round waits COALESCE_SECONDS before
# the next, gathering the commits of that moment into it.
BUSY_WITHIN_SECONDS = 0.01
COALESCE_SECONDS = 0.002

sequencer = Sequencer()
# The server loop of the round the sequencer thread is running (see _run_send).
_sequencer_thread = threading.local()


def _flush_at_exit() -> None:
    # A stopping process numbers what its last requests committed instead of leaving it to
    # the straggler pass (seconds later).
    if sequencer._thread is not None and sequencer._pid == os.getpid():
        sequencer.flush(timeout=3.0)


atexit.register(_flush_at_exit)


def sequence_stragglers(older_than_seconds: float = 2, now: datetime | None = None) -> int:
    """Number events left unnumbered (a process died between commit and numbering).

    Only events older than OLDER_THAN_SECONDS, so this does not race the normal path for
    fresh events (it would be harmless: the space lock serializes numberings). The scheduler
    loop calls it every few seconds.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_seconds)
    # One probe per space on the (space, seq) index: seq IS NULL is an index condition.
    stale = JobEvent.objects.filter(
        space_id=OuterRef("pk"), seq__isnull=True, created_at__lt=cutoff
    )
    space_ids = list(Space.objects.filter(Exists(stale)).values_list("pk", flat=True))
    return sum(publish_space(space_id) for space_id in space_ids)


# --- fan-out ---------------------------------------------------------------------------------


def fan_out(messages: list[tuple[str, dict]]) -> bool:
    """Send (group, message) pairs to the channel layer, bounded in time. Never raises.

    A failure (Redis down or slow) is logged and pauses fan-out for a few seconds; the events
    stay stored, connected consumers catch up from the database, and clients that reconnect
    replay from `since`.
    """
    global _fanout_paused_until
    if not messages:
        return True
    if time.monotonic() < _fanout_paused_until:
        return False
    layer = get_channel_layer()
    if layer is None:
        return False
    timeout = float(getattr(settings, "STREAM_FANOUT_TIMEOUT", 0.5))
    try:
        _run_send(layer, messages, timeout)
    except Exception as exc:
        _fanout_paused_until = time.monotonic() + FANOUT_PAUSE_SECONDS
        log.warning(
            "stream fan-out failed; events stay stored and are replayed",
            extra={"error": repr(exc) or type(exc).__name__, "messages": len(messages)},
        )
        return False
    return True


def resume_fan_out() -> None:
    """Lift the pause after a failure (tests, and an operator who knows Redis is back)."""
    global _fanout_paused_until
    _fanout_paused_until = 0.0


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this sync code runs under (the server's, for a request thread), if any."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


_sender_lock = threading.Lock()
_sender: tuple[int, asyncio.AbstractEventLoop] | None = None


def _sender_loop() -> asyncio.AbstractEventLoop:
    """A long-lived event loop thread for sends from plain sync processes (scheduler, Celery).

    async_to_sync there would start a new loop per call, and channels-redis keeps one
    connection pool per loop: every commit would open fresh Redis connections.
    """
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():  # none yet, or forked since
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="stream-fanout", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def _run_send(layer, messages: list[tuple[str, dict]], timeout: float) -> None:
    server_loop = getattr(_sequencer_thread, "loop", None)
    if server_loop is not None and server_loop.is_running():
        # The sequencer thread of a web process: send on the server's loop, where the
        # consumers read (the in-memory layer's queues belong to it) and where the Redis
        # layer's connections for this process already live.
        future = asyncio.run_coroutine_threadsafe(_send_all(layer, messages, timeout), server_loop)
        future.result(timeout + 1)
        return
    # The in-memory layer's queues belong to the loop of the consumers reading them, so it
    # always sends there; so does code running under a server loop (a request's thread).
    if isinstance(layer, InMemoryChannelLayer) or _server_loop() is not None:
        async_to_sync(_send_all)(layer, messages, timeout)
        return
    future = asyncio.run_coroutine_threadsafe(_send_all(layer, messages, timeout), _sender_loop())
    future.result(timeout + 1)


async def _send_all(layer, messages: list[tuple[str, dict]], timeout: float) -> None:
    # In order within a group (consumers would otherwise see gaps and fill them from the
    # database), concurrently across groups.
    by_group: dict[str, list[dict]] = {}
    for group, message in messages:
        by_group.setdefault(group, []).append(message)

    async def send_group(group: str, items: list[dict]) -> None:
        for message in items:
            await layer.group_send(group, message)

    await asyncio.wait_for(
        asyncio.gather(*(send_group(group, items) for group, items in by_group.items())),
        timeout=timeout,
    )


# --- relay of other processes' events (in-memory channel layer) ------------------------------


def relay_interval() -> float:
    """Seconds between two looks of the relay at the database; 0 turns the relay off."""
    return float(getattr(settings, "STREAM_RELAY_SECONDS", 0.25))


# Events the relay reads and sends per space per look; a longer backlog takes several looks.
RELAY_PAGE = 1000
# In-memory sends only queue; the bound is for a loop too busy to run them.
RELAY_SEND_TIMEOUT = 5.0


class LocalRelay:
    """Brings events numbered by OTHER processes to this process's streams, when the channel
    layer is the in-memory one (the embedded default, no REDIS_URL).

    The in-memory layer does not cross processes: an event that the scheduler (scheduled ->
    pending, rescues), a Celery task or another web process commits is numbered and sent by that
    process's sequencer, to that process's layer, where no socket listens. With Redis every
    process hears every send, and this relay never starts.

    While at least one stream is open in this process, one asyncio task on the server's loop
    looks every STREAM_RELAY_SECONDS at the `event_seq` of the spaces those streams follow (one
    primary-key query for all of them). For each space it keeps a mark: the highest seq this
    process has sent to its local groups. When the space's `event_seq` is past the mark, the
    events in between are read with their counts and `prev` (stored_space_events) and sent to
    the local groups in seq order, exactly as the numbering would have sent them, and the mark
    moves on. This process's own sequencer moves the mark too (`sent`) when its batch starts
    right after it, so what it sent itself is not read again. A consumer drops any seq it has
    already sent and fills any jump from the database, so a message sent twice (the relay and
    the sequencer racing for the same events) still reaches each client once and in order.

    With no stream open the task ends: an idle process makes no query at all.
    """

    def __init__(self) -> None:
        # Guards the maps below: `sent` is called from the sequencer thread.
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._streams: dict[int, int] = {}  # space id -> streams open on it in this process
        self._marks: dict[int, int] = {}  # space id -> highest seq sent to the local groups
        # Looks at the database and events sent since the process started (tests, measuring).
        self.looks = 0
        self.relayed = 0

    @staticmethod
    def enabled() -> bool:
        return relay_interval() > 0 and isinstance(get_channel_layer(), InMemoryChannelLayer)

    def watch(self, space_id: int, seq: int) -> None:
        """A stream of SPACE_ID opened (on the server's loop); it has read the space up to SEQ.

        Every event above SEQ reaches the stream's group later than its own read, so the mark
        of a space watched anew starts there; a mark already kept stays, because everything up
        to it was sent to the group while the new stream was already in it (it joins before it
        reads).
        """
        if not self.enabled():
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop:
                # Another loop than before (a restarted server, or the next test): start afresh.
                self._loop, self._task = loop, None
                self._streams.clear()
                self._marks.clear()
            self._streams[space_id] = self._streams.get(space_id, 0) + 1
            self._marks.setdefault(space_id, seq)
            if self._task is None or self._task.done():
                self._task = loop.create_task(self._run(), name="stream-relay")

    def unwatch(self, space_id: int) -> None:
        """A stream of SPACE_ID closed (on the server's loop). The last one stops the task."""
        with self._lock:
            if space_id not in self._streams or self._loop is not _running_loop():
                return
            self._streams[space_id] -= 1
            if self._streams[space_id] <= 0:
                del self._streams[space_id]
                del self._marks[space_id]
            task = None if self._streams else self._task
            if task is not None:
                self._task = None
        if task is not None:
            task.cancel()

    def sent(self, space_id: int, first: int, last: int) -> None:
        """This process sent seq FIRST..LAST of SPACE_ID to its groups (the sequencer)."""
        with self._lock:
            mark = self._marks.get(space_id)
            # Only a batch that starts right after the mark moves it: with a hole before it,
            # the relay still has to send the hole (other processes' events), for job streams
            # that would not otherwise hear of them.
            if mark is not None and first <= mark + 1:
                self._marks[space_id] = max(mark, last)

    def watched(self) -> dict[int, int]:
        with self._lock:
            return dict(self._marks)

    async def _run(self) -> None:
        from channels.db import database_sync_to_async

        look = database_sync_to_async(_relay_look)
        read = database_sync_to_async(_relay_read)
        while True:
            await asyncio.sleep(relay_interval())
            marks = self.watched()
            if not marks:
                return
            try:
                self.looks += 1
                ahead = await look(marks)
                for space_id, public_id, mark in ahead:
                    upto, messages = await read(space_id, public_id, mark)
                    # On this loop, the one the in-memory layer's consumers read on.
                    await _send_all(get_channel_layer(), messages, RELAY_SEND_TIMEOUT)
                    self.relayed += len(messages) // 2
                    with self._lock:
                        if space_id in self._marks:
                            self._marks[space_id] = max(self._marks[space_id], upto)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is away, say: the next look tries again, and the consumers'
                # own re-checks read what they missed.
                log.warning("stream relay look failed", exc_info=True)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _relay_look(marks: dict[int, int]) -> list[tuple[int, str, int]]:
    """(space id, public id, mark) of the watched spaces whose event_seq is past their mark:
    one query on the primary key, the relay's whole cost while nothing happens."""
    rows = Space.objects.filter(pk__in=list(marks)).values_list("pk", "public_id", "event_seq")
    return sorted((pk, public_id, marks[pk]) for pk, public_id, seq in rows if seq > marks[pk])


def _relay_read(space_id: int, public_id: str, after: int) -> tuple[int, list[tuple[str, dict]]]:
    """(new mark, channel-layer messages) for the events of SPACE_ID after seq AFTER."""
    top, counts = space_state(space_id)
    if top <= after:
        return after, []
    counts = counts_before(space_id, after, top, counts)
    events = stored_space_events(
        space_id, public_id, after, top, counts, RELAY_PAGE, with_prev=True
    )
    group = space_group(public_id)
    messages: list[tuple[str, dict]] = []
    for event in events:
        messages.append((group, {"type": "stream.event", "event": event.space_envelope}))
        messages.append(
            (
                job_group(event.envelope["jobId"]),
                {"type": "stream.event", "event": event.envelope, "prev": event.prev},
            )
        )
    # A full page: the rest on the next look. Otherwise everything up to `top` is sent (a seq
    # missing from the range belonged to a job that retention deleted).
    upto = events[-1].envelope["seq"] if len(events) == RELAY_PAGE else top
    return upto, messages


relay = LocalRelay()
