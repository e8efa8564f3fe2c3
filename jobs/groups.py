"""Groups with a completion step (a chord): jobs created together, and one more job when all
of them have finished.

A create request may carry `group: {name, onComplete}` on its jobs (every job of an array
create that carries one carries the same one); the jobs the request creates with it are the
group's **members**, so its `total` is known from the start. `onComplete` is a job create body
(validated like any, at create time); when every member has reached a terminal status
(completed, dead or killed), the **completion job** is created from it, once, with the members'
ids and outcome counts in its payload's `group`.

The rows (docs/workflows.md):

- `JobGroup`: total, the completed/dead/killed counts, the template, and once fired the
  completion job's id and `fired_at`.
- `Job.group_id` on each member (null on every other job), so a plain job's lifecycle never
  looks here: its one-statement complete carries `AND j.group_id IS NULL`, and a member takes
  the locking path.

How a move is counted: every transition writes one event with its previous status
(jobs/events.py). `events.record()`/`record_many()` hand the events that move a job into or out
of a terminal status to their `terminal_moves` hooks, in the transition's own transaction,
after the job's row was written; `members_moved()` is one (connected in config/apps.py). Here
the groups concerned are locked (id order, so transactions moving members of several groups
cannot deadlock on them), their counts moved, and the move that brings the finished count to
`total` fires the group: the group's `completion_job_id`/`fired_at` are set by an UPDATE
conditional on `completion_job_id IS NULL`, and only when it changed the row is the completion
job inserted. Members finishing at the same instant serialise on the group row, so exactly one
of them sees the last count; a crash rolls the member's move and the firing back together.

A retried member (dead or killed -> pending or blocked, by hand or because a parent was
retried) takes its outcome back out of the counts of a group that has not fired: the group
waits for it again. A fired group is closed: later moves of its members change nothing, and it
never fires again.

The scheduler's `repair_groups` step finds open groups none of whose members is still active
(a hand edit, a restore, an older process that completed a member in one statement during a
deploy), recounts them from the member rows under the group's lock and fires them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from lib import errors
from spaces.models import Space

from . import events, wakeup
from .models import Job, JobEvent, JobGroup

Status = Job.Status

# The completion job's payload lists at most this many member ids (then memberIdsTruncated).
# Members are created in one request, so today no group has more than MAX_BULK_CREATE.
MAX_MEMBER_IDS = 1000
# Open groups one repair transaction looks at.
REPAIR_BATCH = 100
# Fields of a job create body that make no sense on a completion job, by their API name: it
# starts when the group is done, depends on nothing else and is created once by the service.
TEMPLATE_REFUSED = {
    "scheduled_for": "scheduledFor",
    "depends_on": "dependsOn",
    "on_parent_failure": "onParentFailure",
    "idempotency_key": "idempotencyKey",
    "group": "group",
}
_COUNTED = (Status.COMPLETED, Status.DEAD, Status.KILLED)


def _lock(qs):
    # SQLite serialises writers (IMMEDIATE transactions); FOR UPDATE is PostgreSQL's.
    return qs.select_for_update() if connection.vendor == "postgresql" else qs


def template_problems(template: dict) -> dict[str, list[str]]:
    """What a validated create body (internal names) may not carry as a completion job, by
    API field name; the serializer has checked everything else."""
    problems: dict[str, list[str]] = {}
    for field, api_name in TEMPLATE_REFUSED.items():
        if template.get(field) not in (None, [], ""):
            problems[api_name] = ["Not allowed on a completion job"]
    payload = template.get("payload")
    if payload is not None and not isinstance(payload, dict):
        problems["payload"] = ["A completion job's payload is an object (its `group` is added)"]
    elif isinstance(payload, dict) and "group" in payload:
        problems["payload"] = ["`group` is the completion job's own key in its payload"]
    return problems


# --- create ------------------------------------------------------------------------------------


def wants_group(items: Sequence[dict]) -> bool:
    return any(item.get("group") for item in items)


def _canonical(group: dict) -> str:
    return json.dumps(group, sort_keys=True, default=str)


def prepare(space: Space, items: Sequence[dict], results: Sequence[tuple[Job, bool]]) -> None:
    """Before the insert: the request's group row, and its new members pointed at it.

    ITEMS are the validated create items (`group`: {"name", "on_complete"}), RESULTS the
    (job, created) pairs in the same order. Every item that carries a group must carry the
    same one (Invalid, per item index, otherwise). An idempotent repeat keeps the job (and
    group) it names; when every member is one, no group is made.
    """
    carrying = [(index, item["group"]) for index, item in enumerate(items) if item.get("group")]
    first = _canonical(carrying[0][1])
    problems = {
        str(index): {"group": ["Every job of one request carries the same group"]}
        for index, group in carrying[1:]
        if _canonical(group) != first
    }
    if problems:
        raise errors.Invalid("validation_error", "Validation failed", details=problems)
    members = list(
        {
            results[index][0].pk: results[index][0]
            for index, _ in carrying
            if results[index][1]  # created by this request
        }.values()
    )
    if not members:
        return
    spec = carrying[0][1]
    template = dict(spec["on_complete"])
    headers = template.pop("callback_headers", None) or {}
    group = JobGroup.objects.create(
        space=space,
        name=spec["name"],
        total=len(members),
        on_complete=template,
        on_complete_headers=headers,
    )
    for job in members:
        job.group = group


# --- a member moved ----------------------------------------------------------------------------


def moves_terminal(event: JobEvent) -> bool:
    """Whether EVENT moves its job into or out of a terminal status (what groups count)."""
    previous = event.previous_status
    if not previous:
        return False  # a new job, or a report that leaves the status alone
    return (event.status in Job.TERMINAL) != (previous in Job.TERMINAL)


def _group_ids(jobs: Iterable[Job]) -> dict[str, str | None]:
    """{job id: group id}; one query for jobs loaded without the column (workflows' children)."""
    jobs = list(jobs)
    out: dict[str, str | None] = {}
    unread: list[str] = []
    for job in jobs:
        if "group_id" in job.get_deferred_fields():
            unread.append(job.pk)
        else:
            out[job.pk] = job.group_id
    if unread:
        out |= dict(Job.objects.filter(pk__in=unread).values_list("pk", "group_id"))
    return out


def members_moved(moved: Sequence[JobEvent], now: datetime | None = None) -> None:
    """EVENTS (each moving its job into or out of a terminal status) were just written in the
    caller's transaction: count them on the open groups of their jobs, fire the groups whose
    members have now all finished, and write one `group.progress` event per group moved."""
    group_of = _group_ids(event.job for event in moved)
    deltas: dict[str, Counter[str]] = defaultdict(Counter)
    last_member: dict[str, Job] = {}
    for event in moved:
        group_id = group_of.get(event.job_id)
        if group_id is None:
            continue
        if event.status in _COUNTED:
            deltas[group_id][event.status] += 1
        if event.previous_status in _COUNTED:
            deltas[group_id][event.previous_status] -= 1
        last_member[group_id] = event.job
    if not deltas:
        return
    now = now or timezone.now()
    # Locked in id order; a fired group is closed (and one fired while this waited for its
    # lock drops out: PostgreSQL re-checks the condition on the row it locked).
    qs = JobGroup.objects.filter(pk__in=sorted(deltas), fired_at__isnull=True).order_by("pk")
    groups = list(_lock(qs).defer("on_complete", "on_complete_headers"))
    built: list[JobEvent] = []
    for group in groups:
        delta = deltas[group.pk]
        # Never below 0: a member retried after a hand edit that left it uncounted.
        group.completed = max(0, group.completed + delta[Status.COMPLETED])
        group.dead = max(0, group.dead + delta[Status.DEAD])
        group.killed = max(0, group.killed + delta[Status.KILLED])
        JobGroup.objects.filter(pk=group.pk).update(
            completed=group.completed, dead=group.dead, killed=group.killed
        )
        if group.done >= group.total:
            fire(group, now)
        built.append(events.build(last_member[group.pk], "group.progress", progress_data(group)))
    events.record_many(built)


def progress_data(group: JobGroup) -> dict[str, Any]:
    """The data of a `group.progress` event (the space stream's view of a group)."""
    return {
        "groupId": group.pk,
        "name": group.name,
        "done": group.done,
        "total": group.total,
        "completed": group.completed,
        "dead": group.dead,
        "killed": group.killed,
        "completionJobId": group.completion_job_id,
    }


def fire(group: JobGroup, now: datetime) -> Job | None:
    """Create GROUP's completion job, unless it has one: the caller holds the group's row lock
    and has set its counts. Returns the new job, or None when the group had fired already."""
    full = JobGroup.objects.select_related("space").get(pk=group.pk)
    template = full.on_complete
    member_ids = list(
        Job.objects.filter(group_id=group.pk)
        .order_by("pk")
        .values_list("pk", flat=True)[: MAX_MEMBER_IDS + 1]
    )
    payload = dict(template.get("payload") or {}) | {
        "group": {
            "id": group.pk,
            "name": group.name,
            "total": group.total,
            "completed": group.completed,
            "dead": group.dead,
            "killed": group.killed,
            "memberIds": member_ids[:MAX_MEMBER_IDS],
            "memberIdsTruncated": len(member_ids) > MAX_MEMBER_IDS,
        }
    }
    # The fields a create body gives a job (jobs/services.py _build), less those a template
    # may not carry (TEMPLATE_REFUSED): pending at once, nothing to wait for. Built here, not
    # by services.create_job, which calls this module (no import cycle).
    job = Job(
        space=full.space,
        name=template["name"],
        payload=payload,
        status=Status.PENDING,
        priority=template.get("priority") or 0,
        max_retries=template.get("max_retries", 3),
        timeout_seconds=template.get("timeout_seconds", 300),
        available_at=now,
        backoff=template.get("backoff"),
        concurrency_key=template.get("concurrency_key"),
        callback_url=template.get("callback_url") or "",
        callback_headers=full.on_complete_headers or {},
    )
    # Exactly once: the row lock already serialises the members, and this UPDATE, conditional
    # on no completion job yet, is the claim to create it (nothing is written when it fails).
    fired = JobGroup.objects.filter(pk=group.pk, completion_job_id__isnull=True).update(
        completion_job_id=job.pk, fired_at=now
    )
    if fired != 1:
        return None
    job.save(force_insert=True)
    events.record(job, "created", previous_status=None)
    space_ids = {job.space_id}
    transaction.on_commit(lambda: wakeup.notify(space_ids), robust=True)
    group.completion_job_id = job.pk
    group.fired_at = now
    return job


# --- repair ------------------------------------------------------------------------------------


def recount(group_id: str) -> Counter[str]:
    """The group's members by status, from their rows (the member index)."""
    rows = (
        Job.objects.filter(group_id=group_id)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Counter(dict(rows))


def repair_groups(now: datetime | None = None) -> dict[str, int]:
    """Maintenance step: open groups none of whose members is still active get their
    completion job.

    The lifecycle fires a group in its last member's transaction, so in a healthy database this
    finds nothing; it mends a hand edit, a restore, or a member completed by an older process
    that did not know groups. Each candidate is locked (several schedulers skip each other's),
    recounted from its members' rows and fired; the conditional UPDATE in fire() keeps it
    exactly once whatever runs at the same time.
    """
    now = now or timezone.now()
    active = Job.objects.filter(group_id=OuterRef("pk"), status__in=Job.ACTIVE)
    fixed = {"fired": 0}
    last = ""
    while True:
        with transaction.atomic():
            qs = JobGroup.objects.filter(fired_at__isnull=True, pk__gt=last)
            qs = qs.filter(~Exists(active)).order_by("pk")
            if connection.vendor == "postgresql":
                qs = qs.select_for_update(skip_locked=True)
            batch = list(qs.defer("on_complete", "on_complete_headers")[:REPAIR_BATCH])
            if not batch:
                return fixed
            last = batch[-1].pk
            built: list[JobEvent] = []
            for group in batch:
                # Under the group's lock the member rows are exact: a member's move that
                # committed counted itself, one still in flight waits for this lock.
                counts = recount(group.pk)
                if any(counts[status] for status in Job.ACTIVE):
                    continue
                group.completed = counts[Status.COMPLETED]
                group.dead = counts[Status.DEAD]
                group.killed = counts[Status.KILLED]
                JobGroup.objects.filter(pk=group.pk).update(
                    completed=group.completed, dead=group.dead, killed=group.killed
                )
                if fire(group, now) is None:
                    continue
                fixed["fired"] += 1
                member = Job.objects.filter(group_id=group.pk).order_by("-pk").first()
                if member is not None:
                    built.append(events.build(member, "group.progress", progress_data(group)))
            events.record_many(built)
        if len(batch) < REPAIR_BATCH:
            return fixed


# --- retention ---------------------------------------------------------------------------------


def without_open_groups(qs: QuerySet[Job]) -> QuerySet[Job]:
    """QS less the members of groups that have not fired: retention keeps those (the group
    counts and lists them when it fires). Jobs outside a group pass on their null column."""
    fired = JobGroup.objects.filter(pk=OuterRef("group_id"), fired_at__isnull=False)
    return qs.filter(Q(group_id__isnull=True) | Exists(fired))


# --- reads -------------------------------------------------------------------------------------


def get_group(space: Space, group_id: str) -> JobGroup | None:
    if not (len(group_id) == 26 and group_id.isascii() and group_id.isalnum()):
        return None
    return (
        JobGroup.objects.filter(space=space, pk=group_id.upper())
        .defer("on_complete", "on_complete_headers")
        .first()
    )


def recent_groups(space: Space, limit: int = 10) -> list[JobGroup]:
    """The space's newest groups (jobgroup_space_idx), without their templates."""
    qs = JobGroup.objects.filter(space=space).order_by("-pk")
    return list(qs.defer("on_complete", "on_complete_headers")[:limit])
