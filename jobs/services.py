"""The job lifecycle: the one module that changes a job's status.

Every transition runs in one transaction on a locked row (select_for_update) or a conditional
UPDATE whose row count is checked, and writes exactly one job event through jobs.events, whose
side effects (streams, notifications, long-poll wakeups) leave only after commit.

Ordering of the queue: priority (higher first), then available_at (when the job became
available), then id. SQLite runs every transaction IMMEDIATE (see settings), so a claim there is
as atomic as the PostgreSQL `UPDATE ... RETURNING` fed by `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from ulid import ULID

from lib import errors
from spaces import auth as spaces_auth
from spaces.models import Space

from . import events, flow, groups, wakeup, workers, workflows
from .fingerprint import fingerprint
from .models import Job, JobLog, NameLimit
from .queries import attempt

Status = Job.Status

# How many rows one sweep or bulk step touches per transaction.
BATCH_SIZE = 500
MAX_BULK_CREATE = 1000
MAX_POLL_COUNT = 50
# Backoff defaults (docs/api.md, Lifecycle): exponential from 1 s, capped at 1 h, with jitter.
DEFAULT_BACKOFF = {
    "type": "exponential",
    "delaySeconds": 1,
    "maxDelaySeconds": 3600,
    "jitter": True,
}
DELIVERY_TIMEOUT_ERROR = "delivery attempts exhausted"
# A job handed out more than max_retries + this many times without an ack goes dead.
EXTRA_DELIVERIES = 3
LOG_LEVELS = tuple(JobLog.Level.values)  # trace, debug, info, warn, error, fatal


# Any refusal of the lifecycle: a domain error (lib/errors.py) with a code and no HTTP status.
JobError = errors.DomainError


def not_found() -> JobError:
    return errors.NotFound("not_found", "Job not found")


def _new_claim_id() -> str:
    return str(ULID())


def _notify_pending_on_commit(space_ids: Iterable[int]) -> None:
    ids = set(space_ids)
    if ids:
        transaction.on_commit(lambda: wakeup.notify(ids), robust=True)


# --- create ---------------------------------------------------------------------------------


def _build(space: Space, data: dict, now: datetime) -> Job:
    scheduled_for = data.get("scheduled_for")
    future = scheduled_for is not None and scheduled_for > now
    return Job(
        space=space,
        name=data["name"],
        payload=data.get("payload"),
        status=Status.SCHEDULED if future else Status.PENDING,
        priority=data.get("priority") or 0,
        max_retries=data.get("max_retries", 3),
        timeout_seconds=data.get("timeout_seconds", 300),
        scheduled_for=scheduled_for,
        available_at=scheduled_for if future else now,
        backoff=data.get("backoff"),
        idempotency_key=data.get("idempotency_key"),
        concurrency_key=data.get("concurrency_key"),
        callback_url=data.get("callback_url") or "",
        callback_headers=data.get("callback_headers") or {},
    )


def create_job(space: Space, data: dict) -> tuple[Job, bool]:
    """Create one job; (job, created). A repeat of an idempotency key returns the existing job."""
    if data.get("depends_on") or data.get("group"):
        # A child of other jobs: linked to its parents in one transaction (jobs/workflows.py);
        # a group's member: made with its group (jobs/groups.py).
        return _create_with_retry(space, [data], array=False)[0]
    key = data.get("idempotency_key")
    job = _build(space, data, timezone.now())
    # Nothing to look up and nothing that can collide without a key: on PostgreSQL the job
    # and its event are then one statement (one round trip; its own transaction, or the
    # caller's).
    if key is None and _insert_with_event(job):
        if job.status == Status.PENDING:
            _notify_pending_on_commit([space.pk])
        return job, True
    with transaction.atomic():
        if key is not None:
            existing = Job.objects.filter(space=space, idempotency_key=key).first()
            if existing is not None:
                return existing, False
        if key is None:
            job.save(force_insert=True)
            events.record(job, "created", previous_status=None)
        else:
            try:
                # A savepoint: a concurrent create with the same key makes this insert fail on
                # the unique index (PostgreSQL waits for the other transaction first), and the
                # winner's row is then visible to the select below. Without a key nothing can
                # collide, and the two round trips of a savepoint are saved.
                with transaction.atomic():
                    job.save(force_insert=True)
                    events.record(job, "created", previous_status=None)
            except IntegrityError:
                return Job.objects.get(space=space, idempotency_key=key), False
        if job.status == Status.PENDING:
            _notify_pending_on_commit([space.pk])
        return job, True


def _insert_with_event(job: Job) -> bool:
    """PostgreSQL: insert JOB and its `created` event as one statement, and publish the event.

    The job's INSERT is the one the ORM would run (Django's insert compiler: defaults,
    auto_now fields, the callback headers encrypted); the event is inserted from its RETURNING.
    False elsewhere (nothing written).
    """
    from django.db.models.sql import InsertQuery

    if connection.vendor != "postgresql":
        return False

    fields = [f for f in Job._meta.local_concrete_fields if not f.generated]
    query = InsertQuery(Job)
    query.insert_values(fields, [job])
    ((insert_sql, insert_params),) = query.get_compiler(connection=connection).as_sql()
    events_table = connection.ops.quote_name(events.JobEvent._meta.db_table)
    sql = f"""
        WITH j AS ({insert_sql} RETURNING id, space_id, status, attempt_number, created_at)
        INSERT INTO {events_table} (job_id, space_id, type, status, previous_status, data,
                                    attempt_number, seq, created_at)
        SELECT id, space_id, 'created', status, NULL, NULL, attempt_number, NULL, created_at
          FROM j
        RETURNING id, created_at
    """  # noqa: S608 - the ORM's own INSERT, table names from model metadata
    with connection.cursor() as cursor:
        cursor.execute(sql, insert_params)
        event_id, created_at = cursor.fetchone()
    job._state.adding = False
    job._state.db = connection.alias
    event = events.build(job, "created", previous_status=None)
    event.id = event_id
    event.created_at = created_at
    events.publish_on_commit([event])
    return True


def create_jobs(space: Space, items: list[dict]) -> list[tuple[Job, bool]]:
    """Create many jobs in one transaction with one bulk insert; results in input order."""
    if len(items) > MAX_BULK_CREATE:
        raise errors.Invalid("too_many_jobs", f"At most {MAX_BULK_CREATE} jobs per request")
    return _create_with_retry(space, items, array=True)


def _create_with_retry(space: Space, items: list[dict], *, array: bool) -> list[tuple[Job, bool]]:
    try:
        return _create_jobs(space, items, array=array)
    except IntegrityError:
        # Lost an idempotency-key race with a concurrent create: redo it, now seeing the winner.
        return _create_jobs(space, items, array=array)


def _create_jobs(space: Space, items: list[dict], *, array: bool) -> list[tuple[Job, bool]]:
    now = timezone.now()
    with transaction.atomic():
        keys = {d["idempotency_key"] for d in items if d.get("idempotency_key") is not None}
        existing: dict[str, Job] = {}
        if keys:
            existing = {
                j.idempotency_key: j
                for j in Job.objects.filter(space=space, idempotency_key__in=keys)
            }
        results: list[tuple[Job, bool]] = []
        new_jobs: list[Job] = []
        for data in items:
            key = data.get("idempotency_key")
            if key is not None and key in existing:
                results.append((existing[key], False))
                continue
            job = _build(space, data, now)
            if key is not None:
                existing[key] = job  # a duplicate key later in the same batch maps to this one
            new_jobs.append(job)
            results.append((job, True))
        # dependsOn: parents resolved and locked, children set blocked, before the insert.
        links = None
        if workflows.wants_links(items):
            links = workflows.link(space.pk, items, results, array=array)
        if groups.wants_group(items):
            # The group row before its members (their group_id points at it).
            groups.prepare(space, items, results)
        if new_jobs:
            Job.objects.bulk_create(new_jobs)
            events.record_many(
                events.build(job, "created", previous_status=None) for job in new_jobs
            )
            if links is not None:
                workflows.finish_links(links, now)
            if any(job.status == Status.PENDING for job in new_jobs):
                _notify_pending_on_commit([space.pk])
        return results


# --- poll and claim -------------------------------------------------------------------------


def _space_paused(space: Space) -> bool:
    # The space row as an authentication read it at most API_KEY_CACHE_SECONDS ago (a pause
    # takes effect within that time, in every process); read fresh when there is none.
    recent = spaces_auth.recent_space(space.pk)
    if recent is not None:
        return recent.paused_at is not None
    return Space.objects.filter(pk=space.pk, paused_at__isnull=False).exists()


def poll_jobs(
    space: Space,
    *,
    count: int = 1,
    names: list[str] | None = None,
    ack: bool = False,
    worker_id: str | None = None,
    sighting: workers.Sighting | None = None,
) -> list[Job]:
    """Atomically claim up to COUNT pending jobs (optionally only NAMES), in queue order.

    With ACK the jobs go straight to running (the execution deadline starts), saving the worker
    its ack call. WORKER_ID is stored on each claimed job (the workers view's "holds now");
    SIGHTING, when given, is written too (on PostgreSQL inside the poll's one statement).
    """
    count = max(1, min(int(count), MAX_POLL_COUNT))
    if _space_paused(space):
        if sighting is not None:
            workers.write(sighting)
        return []
    now = timezone.now()
    if connection.vendor == "postgresql":
        claimed = _poll_postgres(space, count, names, ack, now, worker_id, sighting)
        if claimed is not None:
            workflows.attach_parents(claimed)  # a query only when a job has parents
            return claimed  # no per-name limit applies: one statement did it all
        sighting = None  # written by that statement all the same
    if sighting is not None:
        workers.write(sighting)
    with transaction.atomic():
        # Per-name limits (jobs/flow.py), their rows locked; an empty dict when the space has
        # none (SQLite, or limits removed since the statement above looked).
        allowances = flow.lock_allowances(space.pk, names, now)
        if allowances:
            ids = _claim_limited(space, count, names, ack, now, allowances, worker_id)
            flow.save_allowances(allowances)
        else:
            ids = _claim_portable(space, count, names, ack, now, worker_id)
        jobs = list(Job.objects.filter(id__in=ids)) if ids else []
        if not jobs:
            return []
        jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
        events.record_many(
            events.build(job, "started" if ack else "delivered", previous_status=Status.PENDING)
            for job in jobs
        )
    workflows.attach_parents(jobs)
    return jobs


def _poll_postgres(
    space: Space,
    count: int,
    names: list[str] | None,
    ack: bool,
    now: datetime,
    worker_id: str | None = None,
    sighting: workers.Sighting | None = None,
) -> list[Job] | None:
    """The whole poll as one statement: the claimed jobs, or None when per-name limits apply.

    It looks for limits on the names polled; with none it locks the first COUNT pending rows of
    the space's queue through the partial index, skipping rows other pollers hold, hands each a
    fresh claim id, inserts their events and returns the rows. The cost depends on COUNT only,
    not on how many jobs are pending or finished. With limits nothing is written, and the
    caller takes the path that honours them (jobs/flow.py).
    """
    name_filter = "AND name = ANY(%s)" if names else ""
    claim_ids = [_new_claim_id() for _ in range(count)]
    status = Status.RUNNING if ack else Status.DELIVERED
    deadline_column = "execution_deadline" if ack else "delivery_deadline"
    other_deadline = "delivery_deadline" if ack else "execution_deadline"
    started = ", started_at = %s" if ack else ""
    # An ack (here implied) resets the count of unacknowledged hand-outs.
    delivery_count = "0" if ack else "j.delivery_count + 1"
    event_type = "started" if ack else "delivered"
    # A worker's sighting, when one is due, is written by this same statement (a CTE).
    seen = f", seen AS ({workers.UPSERT_SQL})" if sighting is not None else ""
    limits = NameLimit._meta.db_table
    sql = f"""
        WITH limited AS (
            SELECT EXISTS (
                SELECT 1 FROM {limits}
                 WHERE space_id = %s AND (concurrency IS NOT NULL OR rate IS NOT NULL
                       OR key_concurrency IS NOT NULL OR key_rate IS NOT NULL)
                 {name_filter}
            ) AS yes
        ), locked AS (
            SELECT id FROM jobs_job
            WHERE space_id = %s AND status = 'pending' {name_filter}
              AND NOT (SELECT yes FROM limited)
            ORDER BY priority DESC, available_at, id
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        ), picked AS (
            SELECT id, row_number() OVER (ORDER BY id) AS rn FROM locked
        ), upd AS (
            UPDATE jobs_job AS j
            SET status = %s,
                claim_id = (%s::varchar[])[picked.rn],
                worker_id = %s,
                {deadline_column} = %s + make_interval(secs => j.timeout_seconds),
                {other_deadline} = NULL,
                delivered_at = %s,
                updated_at = %s,
                delivery_count = {delivery_count}
                {started}
            FROM picked
            WHERE j.id = picked.id
            RETURNING {_RETURNED_COLUMNS}
        ), ev AS (
            INSERT INTO jobs_jobevent (job_id, space_id, type, status, previous_status, data,
                                       attempt_number, seq, created_at)
            SELECT id, space_id, %s, status, 'pending', NULL, attempt_number, NULL, %s FROM upd
            RETURNING id, job_id
        ){seen}
        SELECT (SELECT yes FROM limited) AS limited, ev.id AS event_id, upd.*
          FROM (SELECT 1) AS one LEFT JOIN (upd JOIN ev ON ev.job_id = upd.id) ON TRUE
    """  # noqa: S608 - only fixed fragments are formatted in; values are parameters
    params: list[Any] = [space.pk]
    if names:
        params.append(list(names))
    params.append(space.pk)
    if names:
        params.append(list(names))
    params += [count, status, claim_ids, worker_id, now, now, now]
    if ack:
        params.append(now)
    params += [event_type, now]
    if sighting is not None:
        params += workers.upsert_params(sighting)
    # Always one row at least (the outer join), which says whether limits apply.
    rows = list(Job.objects.raw(sql, params))
    if rows[0].limited:
        return None
    jobs = [job for job in rows if job.event_id is not None]
    built = []
    for job in jobs:
        event = events.build(job, event_type, previous_status=Status.PENDING)
        event.id = job.event_id
        event.created_at = now
        built.append(event)
    if built:
        events.publish_on_commit(built)
    jobs.sort(key=lambda j: (-j.priority, j.available_at, j.id))
    return jobs


# No transition changes these, and they are the row's largest (a payload of up to 1 MiB to
# decode, headers to decrypt): transitions neither read nor return them.
_UNCHANGED_BY_TRANSITIONS = ("payload", "callback_headers")
# What a claim returns of each row: all but the callback headers (secrets, decrypted only when
# a callback is sent; they load on access).
_RETURNED_FIELDS = [f for f in Job._meta.concrete_fields if f.name != "callback_headers"]
_RETURNED_COLUMNS = ", ".join(f"j.{f.column}" for f in _RETURNED_FIELDS)
# What a one-statement transition returns: no payload either (no transition changes it).
_TRANSITION_COLUMNS = ", ".join(
    f"j.{f.column}" for f in _RETURNED_FIELDS if f.name not in _UNCHANGED_BY_TRANSITIONS
)


def _claim_portable(
    space: Space,
    count: int,
    names: list[str] | None,
    ack: bool,
    now: datetime,
    worker_id: str | None = None,
) -> list[str]:
    # SQLite: the surrounding transaction is IMMEDIATE, so it holds the write lock from its
    # first statement and no other claim can interleave. (PostgreSQL polls here only in the
    # moment after a space's last limit was removed; its rows are locked, skipping others'.)
    qs = Job.objects.filter(space=space, status=Status.PENDING)
    if names:
        qs = qs.filter(name__in=names)
    if connection.vendor == "postgresql":
        qs = qs.select_for_update(skip_locked=True)
    jobs = list(qs.order_by("-priority", "available_at", "id")[:count])
    return _mark_claimed(jobs, ack, now, worker_id)


def _claim_limited(
    space: Space,
    count: int,
    names: list[str] | None,
    ack: bool,
    now: datetime,
    allowances: dict[str, flow.Allowance],
    worker_id: str | None = None,
) -> list[str]:
    """Claim in queue order while honouring per-name and per-key limits (rows locked by now).

    Each round takes the next candidates, skipping rows other pollers hold; names and keys
    that run out of allowance are left out of the next round's query (flow.open_filter; keys
    already full are left out of the first), so a flood of one limited name or key at the head
    of the queue cannot hide the jobs behind it. With keys limited a round fetches more
    candidates than asked for (flow.batch_size); flow.max_rounds bounds the rounds.
    """
    claimed: list[str] = []
    for _ in range(flow.max_rounds(allowances)):
        wanted = count - len(claimed)
        if wanted <= 0:
            break
        qs = Job.objects.filter(space=space, status=Status.PENDING)
        if names:
            qs = qs.filter(name__in=names)
        qs = qs.filter(flow.open_filter(allowances))
        qs = qs.order_by("-priority", "available_at", "id")
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True)
        size = flow.batch_size(allowances, wanted)
        candidates = list(
            qs.only("id", "name", "concurrency_key", "delivery_count", "timeout_seconds")[:size]
        )
        if not candidates:
            break
        chosen, _ = flow.pick(candidates, allowances, wanted, now)
        claimed += _mark_claimed(chosen, ack, now, worker_id)
        if len(chosen) == len(candidates) or len(candidates) < size:
            break  # took everything offered, or nothing is left behind what was offered
    return claimed


def _mark_claimed(
    jobs: list[Job], ack: bool, now: datetime, worker_id: str | None = None
) -> list[str]:
    if not jobs:
        return []
    if connection.vendor == "postgresql":
        return _mark_claimed_postgres(jobs, ack, now, worker_id)
    claimed: list[str] = []
    for job in jobs:
        updates: dict[str, Any] = {
            "status": Status.RUNNING if ack else Status.DELIVERED,
            "claim_id": _new_claim_id(),
            "worker_id": worker_id,
            "delivered_at": now,
            "updated_at": now,
            "delivery_count": job.delivery_count + 1,
        }
        deadline = now + timedelta(seconds=job.timeout_seconds)
        if ack:
            updates |= {
                "execution_deadline": deadline,
                "delivery_deadline": None,
                "started_at": now,
                "delivery_count": 0,
            }
        else:
            updates |= {"delivery_deadline": deadline, "execution_deadline": None}
        # Conditional on the status, and the row count checked: belt and braces.
        if Job.objects.filter(pk=job.pk, status=Status.PENDING).update(**updates) == 1:
            claimed.append(job.id)
    return claimed


def _mark_claimed_postgres(
    jobs: list[Job], ack: bool, now: datetime, worker_id: str | None = None
) -> list[str]:
    """_mark_claimed as one UPDATE for the whole batch (one round trip instead of one per job,
    while the poll holds its limit rows' locks): the same columns, each job its own claim id
    and deadline from its own timeout, and the same condition on the status."""
    deadline_column = "execution_deadline" if ack else "delivery_deadline"
    other_deadline = "delivery_deadline" if ack else "execution_deadline"
    started = ", started_at = %s" if ack else ""
    # An ack (here implied) resets the count of unacknowledged hand-outs.
    delivery_count = "0" if ack else "j.delivery_count + 1"
    sql = f"""
        UPDATE jobs_job AS j
           SET status = %s,
               claim_id = v.claim_id,
               worker_id = %s,
               {deadline_column} = %s + make_interval(secs => j.timeout_seconds),
               {other_deadline} = NULL,
               delivered_at = %s,
               updated_at = %s,
               delivery_count = {delivery_count}
               {started}
          FROM unnest(%s::varchar[], %s::varchar[]) AS v(id, claim_id)
         WHERE j.id = v.id AND j.status = 'pending'
        RETURNING j.id
    """  # noqa: S608 - only fixed fragments are formatted in; values are parameters
    params: list[Any] = [Status.RUNNING if ack else Status.DELIVERED, worker_id, now, now, now]
    if ack:
        params.append(now)
    params += [[job.id for job in jobs], [_new_claim_id() for _ in jobs]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def claim_job(
    space: Space,
    job_id: str,
    *,
    worker_id: str | None = None,
    sighting: workers.Sighting | None = None,
) -> Job:
    """Claim one pending job by id (the HTTP push receiver's call)."""
    if sighting is not None:
        workers.write(sighting)
    job = Job.objects.filter(pk=job_id, space=space).only("id", "status").first()
    if job is None:
        raise not_found()
    if _space_paused(space):
        raise errors.Conflict("space_paused", "The space is paused: no jobs are handed out")
    now = timezone.now()
    with transaction.atomic():
        job = _lock(job, whole=True)  # the descriptor handed out carries the payload
        if job.status == Status.KILLED:
            raise _killed()
        if job.status != Status.PENDING:
            raise _invalid(job, "claim")
        allowances = flow.lock_allowances(space.pk, [job.name], now)
        if allowances:
            allowance = allowances[job.name]
            refusal = flow.refusal(allowance, job.concurrency_key)
            if refusal is not None:
                raise errors.Conflict("limit_reached", refusal)
            allowance.take(now, job.concurrency_key)
            flow.save_allowances(allowances)
        job.status = Status.DELIVERED
        job.claim_id = _new_claim_id()
        job.worker_id = worker_id
        job.delivered_at = now
        job.delivery_deadline = now + timedelta(seconds=job.timeout_seconds)
        job.execution_deadline = None
        job.delivery_count += 1
        job.save(update_fields=_CLAIM_FIELDS)
        events.record(job, "delivered", previous_status=Status.PENDING)
    workflows.attach_parents([job])
    return job


# --- worker calls on one job ----------------------------------------------------------------


# The columns each transition writes: a save of every column would rewrite the payload (up to
# 1 MiB) and re-encrypt the callback headers on every call.
_CLAIM_FIELDS = [
    "status",
    "claim_id",
    "worker_id",
    "delivered_at",
    "delivery_deadline",
    "execution_deadline",
    "delivery_count",
    "updated_at",
]
_ACK_FIELDS = [
    "status",
    "started_at",
    "execution_deadline",
    "delivery_deadline",
    "delivery_count",
    "updated_at",
]
_COMPLETE_FIELDS = [
    "status",
    "result",
    "completed_at",
    "started_at",
    "delivery_deadline",
    "execution_deadline",
    "updated_at",
]


# Fail, kill, retry and the bulk and sweeper steps.
_SAVE_FIELDS = [
    "status",
    "attempt_number",
    "delivery_count",
    "available_at",
    "claim_id",
    "delivery_deadline",
    "execution_deadline",
    "completed_at",
    "result",
    "last_error",
    "failed_at",
    "error_fingerprint",
    "updated_at",
]


def _lock(job: Job, *, whole: bool = False) -> Job:
    """The job's row, locked for this transaction; 404 when it is gone or of another space.

    JOB may be a reference never read from the database (the API's worker calls): this is the
    call's one read of the row.
    """
    try:
        return (
            Job.objects.select_for_update()
            # The caller's instance keeps its own payload and headers.
            .defer(*(() if whole else _UNCHANGED_BY_TRANSITIONS))
            .get(pk=job.pk, space_id=job.space_id)
        )
    except Job.DoesNotExist:
        raise not_found() from None


def _killed() -> JobError:
    return errors.Conflict("job_killed", "The job was killed")


def _invalid(job: Job, action: str) -> JobError:
    return errors.Conflict("invalid_transition", f"Cannot {action} a job that is {job.status}")


def _check(job: Job, claim_id: str | None, allowed: Iterable[str], action: str) -> None:
    """The checks every worker call makes on the locked row, in this order."""
    if job.status == Status.KILLED:
        raise _killed()
    if claim_id is not None and claim_id != job.claim_id:
        raise errors.Conflict("stale_claim", "The claim id is no longer this job's current claim")
    if job.status not in allowed:
        raise _invalid(job, action)


def _refresh(target: Job, source: Job) -> None:
    """Copy the locked row's state back into the caller's instance (what it loaded)."""
    deferred = source.get_deferred_fields()
    for field in Job._meta.concrete_fields:
        if field.attname not in deferred:
            setattr(target, field.attname, getattr(source, field.attname))


# --- one-statement transitions (PostgreSQL) --------------------------------------------------
#
# The worker calls most made (ack, progress, keepalive, complete) are on PostgreSQL one
# statement, hence one round trip and their own transaction: lock the row, check its status and
# claim, update it and insert its event. When the checks do not pass (or the job is unknown),
# nothing is written and the call takes the locking path below, which answers why (killed,
# stale claim, invalid transition, not found) exactly as before, or, if the row changed in
# between, makes the transition itself.


def _json_param(model, field: str, value: Any):
    """VALUE as the ORM would write it to a JSON column (None as SQL NULL)."""
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def _in_one_statement(
    job: Job,
    claim_id: str | None,
    allowed: list[str],
    now: datetime,
    *,
    sets: str,
    set_params: list,
    event_type: str,
    event_data: str,
    event_params: list,
    moves_status: bool,
    only_if: str = "",
) -> bool:
    """The transition as one statement; False (nothing written) when its checks fail, or when
    ONLY_IF (a fixed SQL condition on the row `j`) does not hold."""
    if connection.vendor != "postgresql":
        return False
    # The old row is locked first (FOR UPDATE sees the latest committed version), so its
    # status is the one the update changes; previous_status comes from it.
    sql = f"""
        WITH old AS (
            SELECT id, status FROM jobs_job WHERE id = %s AND space_id = %s FOR UPDATE
        ), upd AS (
            UPDATE jobs_job AS j SET {sets}, updated_at = %s
              FROM old
             WHERE j.id = old.id AND old.status = ANY(%s)
               AND (%s::varchar IS NULL OR j.claim_id = %s) {only_if}
            RETURNING {_TRANSITION_COLUMNS}, old.status AS old_status
        ), ev AS (
            INSERT INTO jobs_jobevent (job_id, space_id, type, status, previous_status, data,
                                       attempt_number, seq, created_at)
            SELECT id, space_id, %s, status, {"old_status" if moves_status else "NULL"},
                   {event_data}, attempt_number, NULL, %s
              FROM upd
            RETURNING id, data
        )
        SELECT upd.*, ev.id AS event_id, ev.data AS event_data FROM upd, ev
    """  # noqa: S608 - only fixed fragments are formatted in; values are parameters
    params = [
        job.pk,
        job.space_id,
        *set_params,
        now,
        allowed,
        claim_id,
        claim_id,
        event_type,
        *event_params,
        now,
    ]
    rows = list(Job.objects.raw(sql, params))
    if not rows:
        return False
    (row,) = rows
    event = events.JobEvent(
        id=row.event_id,
        job_id=row.id,
        space_id=row.space_id,
        type=event_type,
        status=row.status,
        previous_status=row.old_status if moves_status else None,
        # Read back as text (Django loads jsonb as text and decodes it per field).
        data=json.loads(row.event_data) if isinstance(row.event_data, str) else row.event_data,
        attempt_number=row.attempt_number,
        created_at=now,
    )
    event.job = row
    events.publish_on_commit([event])
    _refresh(job, row)
    return True


def ack_job(job: Job, *, claim_id: str | None = None) -> Job:
    now = timezone.now()
    if _in_one_statement(
        job,
        claim_id,
        [Status.DELIVERED],
        now,
        sets="""status = 'running', started_at = %s,
                execution_deadline = %s + make_interval(secs => j.timeout_seconds),
                delivery_deadline = NULL, delivery_count = 0""",
        set_params=[now, now],
        event_type="started",
        event_data="NULL",
        event_params=[],
        moves_status=True,
    ):
        return job
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.DELIVERED], "ack")
        locked.status = Status.RUNNING
        locked.started_at = now
        locked.execution_deadline = now + timedelta(seconds=locked.timeout_seconds)
        locked.delivery_deadline = None
        locked.delivery_count = 0
        locked.save(update_fields=_ACK_FIELDS)
        events.record(locked, "started", previous_status=Status.DELIVERED)
    _refresh(job, locked)
    return job


def report_progress(
    job: Job,
    percent: float,
    message: str,
    sub_progress: dict | None = None,
    *,
    claim_id: str | None = None,
) -> Job:
    now = timezone.now()
    data: dict[str, Any] = {"percent": percent, "message": message}
    if sub_progress is not None:
        data["subProgress"] = sub_progress
    if _in_one_statement(
        job,
        claim_id,
        [Status.RUNNING],
        now,
        sets="""progress = %s,
                execution_deadline = %s + make_interval(secs => j.timeout_seconds)""",
        set_params=[_json_param(Job, "progress", data | {"updatedAt": now.isoformat()}), now],
        event_type="progress",
        event_data="%s",
        event_params=[_json_param(events.JobEvent, "data", data)],
        moves_status=False,
    ):
        return job
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.RUNNING], "report progress on")
        locked.progress = data | {"updatedAt": now.isoformat()}
        locked.execution_deadline = now + timedelta(seconds=locked.timeout_seconds)
        locked.save(update_fields=["progress", "execution_deadline", "updated_at"])
        events.record(locked, "progress", data)
    _refresh(job, locked)
    return job


def checkpoint_job(job: Job, data: dict, *, claim_id: str | None = None) -> Job:
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.RUNNING], "checkpoint")
        locked.execution_deadline = now + timedelta(seconds=locked.timeout_seconds)
        locked.save(update_fields=["execution_deadline", "updated_at"])
        events.record(locked, "checkpoint", data)
    _refresh(job, locked)
    return job


# Event types a worker may not forge with /event: the lifecycle's own, and the names of the
# streams' first messages (jobs/events.py).
RESERVED_EVENT_TYPES = events.RESERVED_TYPES


def record_custom_event(job: Job, type: str, data: Any, *, claim_id: str | None = None) -> Job:
    if type in RESERVED_EVENT_TYPES:
        raise errors.Invalid(
            "validation_error",
            "Validation failed",
            details={"type": [f"'{type}' is a reserved event type"]},
        )
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.DELIVERED, Status.RUNNING], "send an event for")
        events.record(locked, type, data)
    _refresh(job, locked)
    return job


def keepalive_job(
    job: Job, extend_seconds: int | None = None, *, claim_id: str | None = None
) -> Job:
    """Push the current deadline to now + EXTEND_SECONDS (default: the job's timeout)."""
    now = timezone.now()
    # The deadline in the event as Python's isoformat() writes it (UTC, microseconds).
    seconds = "COALESCE(%s, j.timeout_seconds)"
    deadline = f"(%s + make_interval(secs => {seconds}))"
    if _in_one_statement(
        job,
        claim_id,
        [Status.DELIVERED, Status.RUNNING],
        now,
        sets=f"""execution_deadline = CASE WHEN j.status = 'running' THEN {deadline}
                                          ELSE j.execution_deadline END,
                 delivery_deadline = CASE WHEN j.status = 'delivered' THEN {deadline}
                                         ELSE j.delivery_deadline END""",
        set_params=[now, extend_seconds, now, extend_seconds],
        event_type="keepalive",
        event_data="""jsonb_build_object(
            'extendSeconds', COALESCE(%s, upd.timeout_seconds),
            'deadline', to_char(
                (CASE WHEN upd.status = 'running' THEN upd.execution_deadline
                      ELSE upd.delivery_deadline END) AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))""",
        event_params=[extend_seconds],
        moves_status=False,
    ):
        return job
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.DELIVERED, Status.RUNNING], "keep alive")
        seconds = extend_seconds or locked.timeout_seconds
        deadline = now + timedelta(seconds=seconds)
        if locked.status == Status.RUNNING:
            locked.execution_deadline = deadline
            field = "execution_deadline"
        else:
            locked.delivery_deadline = deadline
            field = "delivery_deadline"
        locked.save(update_fields=[field, "updated_at"])
        events.record(
            locked, "keepalive", {"extendSeconds": seconds, "deadline": deadline.isoformat()}
        )
    _refresh(job, locked)
    return job


def append_logs(job: Job, lines: list[dict]) -> int:
    """Store validated log lines ({level, message, timestamp, attributes}); one `logs` event."""
    if not lines:
        return 0
    now = timezone.now()
    with transaction.atomic():
        # The row lock serialises seq assignment per job.
        locked = _lock(job)
        if locked.status == Status.KILLED:
            raise _killed()
        first = locked.log_seq + 1
        rows = [
            JobLog(
                job_id=locked.pk,
                seq=first + i,
                level=line.get("level") or "info",
                message=line["message"],
                timestamp=line.get("timestamp") or now,
                attributes=line.get("attributes") or {},
                attempt_number=locked.attempt_number,
            )
            for i, line in enumerate(lines)
        ]
        JobLog.objects.bulk_create(rows)
        locked.log_seq = first + len(rows) - 1
        locked.save(update_fields=["log_seq", "updated_at"])
        levels = Counter(row.level for row in rows)
        events.record(locked, "logs", {"count": len(rows), "levels": dict(levels)})
    _refresh(job, locked)
    return len(rows)


def complete_job(job: Job, result: Any = None, *, claim_id: str | None = None) -> Job:
    now = timezone.now()
    if _in_one_statement(
        job,
        claim_id,
        [Status.DELIVERED, Status.RUNNING],
        now,
        # Completing a delivered job implies the ack (started_at).
        sets="""status = 'completed', result = %s, completed_at = %s,
                started_at = COALESCE(j.started_at, %s),
                delivery_deadline = NULL, execution_deadline = NULL""",
        set_params=[_json_param(Job, "result", result), now, now],
        event_type="completed",
        event_data="%s",
        event_params=[_json_param(events.JobEvent, "data", {"result": result})],
        moves_status=True,
        # A parent releases its children, and a group's member counts on its group, in its
        # own transaction: the locking path below (jobs/events.py hands the member's move to
        # jobs/groups.py). A plain job (no children, no group) keeps the one statement.
        only_if="AND NOT j.has_children AND j.group_id IS NULL",
    ):
        return job
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.DELIVERED, Status.RUNNING], "complete")
        previous = locked.status
        locked.status = Status.COMPLETED
        locked.result = result
        locked.completed_at = now
        if locked.started_at is None:
            locked.started_at = now  # completing a delivered job implies the ack
        locked.delivery_deadline = None
        locked.execution_deadline = None
        locked.save(update_fields=_COMPLETE_FIELDS)
        events.record(locked, "completed", {"result": result}, previous_status=previous)
        workflows.parents_finished([locked], now)
    _refresh(job, locked)
    return job


def complete_jobs(space: Space, items: list[tuple[str, str | None, Any]]) -> list[Job | JobError]:
    """Complete many jobs of SPACE in one transaction; ITEMS are (job id, claim id, result).

    Each item keeps every rule of complete_job(): the same checks on the locked row in the
    same order (killed, stale claim, status), one `completed` event per job, the same
    notifications (the events go out together after commit). Answered per item, in input
    order: the completed Job, or the JobError that item would have got alone. An id given
    twice completes once; the repeat gets invalid_transition, as a second call would.

    Cost: one statement locks every row (in id order, so concurrent batches cannot deadlock),
    one updates them, one inserts the events, whatever the batch size.
    """
    now = timezone.now()
    wanted = sorted({job_id for job_id, _, _ in items})
    out: list[Job | JobError] = []
    with transaction.atomic():
        locked = {
            job.pk: job
            for job in Job.objects.select_for_update()
            .filter(space=space, pk__in=wanted)
            .order_by("pk")
        }
        done: list[Job] = []
        built: list[events.JobEvent] = []
        for job_id, claim_id, result in items:
            job = locked.get(job_id)
            if job is None:
                out.append(not_found())
                continue
            try:
                _check(job, claim_id, [Status.DELIVERED, Status.RUNNING], "complete")
            except JobError as exc:
                out.append(exc)
                continue
            previous = job.status
            job.status = Status.COMPLETED
            job.result = result
            job.completed_at = now
            job.updated_at = now
            if job.started_at is None:
                job.started_at = now  # completing a delivered job implies the ack
            job.delivery_deadline = None
            job.execution_deadline = None
            built.append(
                events.build(job, "completed", {"result": result}, previous_status=previous)
            )
            done.append(job)
            out.append(job)
        if done:
            results = {json.dumps(job.result, sort_keys=True, default=str) for job in done}
            common: dict[str, Any] = {}
            if len(results) == 1:
                common["result"] = done[0].result  # the usual batch: every result alike
            Job.objects.filter(pk__in=[job.pk for job in done]).update(
                status=Status.COMPLETED,
                completed_at=now,
                updated_at=now,
                started_at=Coalesce(F("started_at"), Value(now)),
                delivery_deadline=None,
                execution_deadline=None,
                **common,
            )
            if not common:
                Job.objects.bulk_update(done, ["result"])
            events.record_many(built)
            workflows.parents_finished(done, now)
    return out


def backoff_delay(job: Job, failed_attempt: int) -> float:
    """Seconds to wait after FAILED_ATTEMPT (1-based) before the next attempt.

    exponential: delaySeconds * 2^(failed_attempt - 1); fixed: delaySeconds; both capped at
    maxDelaySeconds. Jitter picks uniformly in [delay / 2, delay] so retries of jobs that
    failed together spread out.
    """
    policy = DEFAULT_BACKOFF | (job.backoff or {})
    base = float(policy.get("delaySeconds") or 0)
    cap = float(policy.get("maxDelaySeconds") or DEFAULT_BACKOFF["maxDelaySeconds"])
    if policy.get("type") == "fixed":
        delay = base
    else:
        delay = base * (2 ** min(max(failed_attempt - 1, 0), 40))
    delay = min(delay, cap)
    if policy.get("jitter") and delay > 0:
        delay = random.uniform(delay / 2, delay)
    return delay


def _fail_locked(locked: Job, error: str, retry: bool, now: datetime) -> events.JobEvent:
    """Apply a failed attempt to a locked job; returns the unsaved event. Caller saves."""
    previous = locked.status
    locked.last_error = error
    # The errors view groups failures by this (jobs/fingerprint.py): an indexed GROUP BY.
    locked.failed_at = now
    locked.error_fingerprint = fingerprint(error)
    locked.delivery_deadline = None
    locked.execution_deadline = None
    locked.claim_id = None
    locked.delivery_count = 0
    if retry and locked.attempt_number <= locked.max_retries:
        delay = backoff_delay(locked, locked.attempt_number)
        locked.attempt_number += 1
        locked.available_at = now + timedelta(seconds=delay)
        locked.status = Status.SCHEDULED if delay > 0 else Status.PENDING
        data = {
            "error": error,
            "attemptNumber": attempt(locked.attempt_number),  # the next one, from 0
            "availableAt": locked.available_at.isoformat(),
        }
        return events.build(locked, "retried", data, previous_status=previous)
    locked.status = Status.DEAD
    locked.completed_at = now
    return events.build(locked, "dead", {"error": error}, previous_status=previous)


def fail_job(job: Job, error: str, *, retry: bool = True, claim_id: str | None = None) -> Job:
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(job)
        _check(locked, claim_id, [Status.DELIVERED, Status.RUNNING], "fail")
        event = _fail_locked(locked, error, retry, now)
        locked.save(update_fields=_SAVE_FIELDS)
        events.record_many([event])
        workflows.parents_finished([locked], now)  # when it died
        if locked.status == Status.PENDING:
            _notify_pending_on_commit([locked.space_id])
    _refresh(job, locked)
    return job


def kill_job(job: Job, reason: str | None = None) -> Job:
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(job)
        if locked.status == Status.KILLED:
            raise _killed()
        if locked.is_terminal:
            raise _invalid(locked, "kill")
        previous = locked.status
        locked.status = Status.KILLED
        locked.completed_at = now
        locked.delivery_deadline = None
        locked.execution_deadline = None
        locked.save(update_fields=_SAVE_FIELDS)
        events.record(locked, "killed", {"reason": reason}, previous_status=previous)
        workflows.parents_finished([locked], now)
    _refresh(job, locked)
    return job


def _requeue_for_retry(locked: Job, now: datetime) -> events.JobEvent:
    previous = locked.status
    locked.status = Status.PENDING
    locked.attempt_number = 1
    locked.delivery_count = 0
    locked.available_at = now
    locked.claim_id = None
    locked.delivery_deadline = None
    locked.execution_deadline = None
    locked.completed_at = None
    locked.result = None
    return events.build(locked, "pending", {"reason": "retry"}, previous_status=previous)


def retry_job(job: Job) -> Job:
    """Dead or killed -> pending again with its attempts reset (the dead-letter redrive)."""
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(job)
        if locked.status not in (Status.DEAD, Status.KILLED):
            raise _invalid(locked, "retry")
        event = _requeue_for_retry(locked, now)
        locked.save(update_fields=_SAVE_FIELDS)
        events.record_many([event])
        workflows.parents_retried([locked], now)  # the children it cancelled come back
        _notify_pending_on_commit([locked.space_id])
    _refresh(job, locked)
    return job


# --- bulk actions (admin, dashboard) --------------------------------------------------------


def _batches(queryset: QuerySet, statuses: Iterable[str]) -> Iterable[list[str]]:
    ids = queryset.filter(status__in=list(statuses)).values_list("pk", flat=True)
    last = ""
    while True:
        batch = list(ids.filter(pk__gt=last).order_by("pk")[:BATCH_SIZE])
        if not batch:
            return
        yield batch
        last = batch[-1]


def _lock_batch(ids: list[str], statuses: Iterable[str]) -> list[Job]:
    qs = Job.objects.filter(pk__in=ids, status__in=list(statuses)).order_by("pk")
    if connection.vendor == "postgresql":
        qs = qs.select_for_update(skip_locked=True)
    return list(qs)


def _save_batch(jobs: list[Job], now: datetime) -> None:
    for job in jobs:
        job.updated_at = now
    Job.objects.bulk_update(jobs, _SAVE_FIELDS)


def bulk_kill(queryset: QuerySet, reason: str | None = None) -> int:
    """Kill every non-terminal job of QUERYSET, in batches; returns how many were killed."""
    done = 0
    for ids in _batches(queryset, Job.ACTIVE):
        now = timezone.now()
        with transaction.atomic():
            jobs = _lock_batch(ids, Job.ACTIVE)
            built = []
            for job in jobs:
                previous = job.status
                job.status = Status.KILLED
                job.completed_at = now
                job.delivery_deadline = None
                job.execution_deadline = None
                built.append(
                    events.build(job, "killed", {"reason": reason}, previous_status=previous)
                )
            _save_batch(jobs, now)
            events.record_many(built)
            workflows.parents_finished(jobs, now)
            done += len(jobs)
    return done


def bulk_retry(queryset: QuerySet) -> int:
    """Re-queue every dead or killed job of QUERYSET, in batches; returns how many."""
    done = 0
    finished = [Status.DEAD, Status.KILLED]
    for ids in _batches(queryset, finished):
        now = timezone.now()
        with transaction.atomic():
            jobs = _lock_batch(ids, finished)
            built = [_requeue_for_retry(job, now) for job in jobs]
            _save_batch(jobs, now)
            events.record_many(built)
            workflows.parents_retried(jobs, now)
            _notify_pending_on_commit({job.space_id for job in jobs})
            done += len(jobs)
    return done


# --- the sweeper ----------------------------------------------------------------------------


def _due(status: str, field: str, now: datetime, inclusive: bool) -> list[Job]:
    lookup = f"{field}__lte" if inclusive else f"{field}__lt"
    qs = Job.objects.filter(status=status, **{lookup: now}).order_by(field, "pk")
    if connection.vendor == "postgresql":
        # Several sweepers at once each take different rows; none transitions a job twice.
        qs = qs.select_for_update(skip_locked=True)
    return list(qs[:BATCH_SIZE])


def _sweep_step(kind: str, now: datetime) -> int:
    with transaction.atomic():
        if kind == "scheduled":
            # A scheduled job becomes pending once its time is reached (at the instant itself).
            jobs = _due(Status.SCHEDULED, "available_at", now, inclusive=True)
        elif kind == "delivery":
            # A deadline is inclusive: the holder may still act at the deadline instant; the
            # job is taken back once the deadline is past.
            jobs = _due(Status.DELIVERED, "delivery_deadline", now, inclusive=False)
        else:
            jobs = _due(Status.RUNNING, "execution_deadline", now, inclusive=False)
        if not jobs:
            return 0
        built = []
        for job in jobs:
            previous = job.status
            if kind == "scheduled":
                job.status = Status.PENDING
                built.append(
                    events.build(job, "pending", {"reason": "scheduled"}, previous_status=previous)
                )
            elif kind == "delivery":
                job.claim_id = None
                job.delivery_deadline = None
                if job.delivery_count > job.max_retries + EXTRA_DELIVERIES:
                    job.status = Status.DEAD
                    job.last_error = DELIVERY_TIMEOUT_ERROR
                    job.failed_at = now
                    job.error_fingerprint = fingerprint(DELIVERY_TIMEOUT_ERROR)
                    job.completed_at = now
                    job.delivery_count = 0
                    built.append(
                        events.build(
                            job, "dead", {"error": DELIVERY_TIMEOUT_ERROR}, previous_status=previous
                        )
                    )
                else:
                    job.status = Status.PENDING
                    built.append(
                        events.build(
                            job, "pending", {"reason": "delivery_timeout"}, previous_status=previous
                        )
                    )
            else:
                built.append(_fail_locked(job, "timeout", True, now))
        _save_batch(jobs, now)
        events.record_many(built)
        workflows.parents_finished(jobs, now)  # the ones that died
        _notify_pending_on_commit({j.space_id for j in jobs if j.status == Status.PENDING})
        return len(jobs)


def _sweep_all(kind: str, now: datetime) -> int:
    moved = 0
    while True:
        step = _sweep_step(kind, now)
        moved += step
        if step < BATCH_SIZE:
            return moved


def stage_due(now: datetime | None = None) -> dict[str, int]:
    """Staging: scheduled jobs whose time came (scheduledFor, a retry's backoff) become pending."""
    return {"scheduled": _sweep_all("scheduled", now or timezone.now())}


def rescue_expired(now: datetime | None = None) -> dict[str, int]:
    """Rescue: delivered jobs past their delivery deadline go back to pending; running jobs past
    their execution deadline are retried or die, as a failure would."""
    now = now or timezone.now()
    return {kind: _sweep_all(kind, now) for kind in ("delivery", "execution")}


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Staging and rescue at NOW, in that order; how many jobs each kind moved."""
    now = now or timezone.now()
    return stage_due(now) | rescue_expired(now)


def payload_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
