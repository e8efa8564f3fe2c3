"""Workflows: jobs that wait for other jobs (`dependsOn`), and what a parent's end does to them.

A child is created with the ids of its parents (or, in an array create, the positions of
earlier items). Parents must exist when the child is created, so no cycle can form. Until every
parent has finished the child waits in status `blocked`: never polled, never claimable, counted
like any status.

The rows (docs/workflows.md):

- `JobDependency` is one edge, parent -> child.
- On the child: `parent_count` (its parents, 0 for a plain job), `waiting_parents` (parents not
  finished yet) and `on_parent_failure` ("cancel" or "run").
- On the parent: `has_children`, so the lifecycle of a plain job never looks for children.

Every function here runs inside the caller's transaction (jobs/services.py, the one module that
changes a job's status, calls them) on locked parent rows, and locks the children it touches
in id order, so two parents finishing at once cannot deadlock on their shared children and
each child is released exactly once: its counter is read and written under its row lock.

When a parent finishes:

- completed: each blocked child's `waiting_parents` goes down; at 0 it becomes pending;
- dead or killed: a "cancel" child is killed with reason "parent failed" (and, in turn, its own
  "cancel" children, transitively); a "run" child counts the parent as finished, like a
  completion, and runs with the parents' outcomes in its descriptor's `parents`.

Retrying a dead or killed parent brings back the children it cancelled (transitively); the
maintenance step `repair_blocked` releases children left blocked whose parents are all done.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Length
from django.utils import timezone

from lib import errors

from . import events, wakeup
from .models import Job, JobDependency

Status = Job.Status

# Fan-in: parents of one job. Fan-out: children of one job, all requests together.
MAX_PARENTS = 100
MAX_CHILDREN = 1000
# The descriptor's `parents`: one parent's result is given when its JSON is at most this size,
# and the results of all parents together stop at PARENTS_MAX_BYTES (then `resultTruncated`).
PARENT_RESULT_MAX_BYTES = 64 * 1024
PARENTS_MAX_BYTES = 1024 * 1024
PARENT_ERROR_MAX_CHARS = 1000

CANCEL = "cancel"
RUN = "run"
POLICIES = (CANCEL, RUN)
# The reason of a cascade kill, and the error it leaves on the child: what a retry of the
# parent looks for to bring it back.
PARENT_FAILED = "parent failed"

FINISHED = tuple(Job.TERMINAL)
FAILED = (Status.DEAD, Status.KILLED)
# How many blocked jobs one repair pass looks at, and how long a child must have been left
# alone before the repair touches it (a parent's transaction in flight is not a leftover).
REPAIR_BATCH = 500
REPAIR_AFTER_SECONDS = 30


def _invalid(details: Any) -> errors.Invalid:
    return errors.Invalid("validation_error", "Validation failed", details=details)


def _lock(qs):
    # SQLite serialises writers (IMMEDIATE transactions); FOR UPDATE is PostgreSQL's.
    return qs.select_for_update() if connection.vendor == "postgresql" else qs


# --- create ----------------------------------------------------------------------------------


@dataclass
class Links:
    """What linking a request's new jobs to their parents leaves to do after the insert."""

    edges: list[JobDependency] = field(default_factory=list)
    existing_parents: set[str] = field(default_factory=set)
    doomed: list[Job] = field(default_factory=list)  # born with a failed parent: cancelled


def wants_links(items: Sequence[dict]) -> bool:
    return any(item.get("depends_on") for item in items)


def link(
    space_id: int, items: Sequence[dict], results: Sequence[tuple[Job, bool]], *, array: bool
) -> Links:
    """Resolve each new job's `depends_on` (before the insert) and set its waiting state.

    ITEMS are the validated create items, RESULTS the (job, created) pairs in the same order
    (new jobs not inserted yet). A reference is a job id of SPACE_ID or, when ARRAY, the
    position of an earlier item. The existing parents are locked (id order) so that none of
    them finishes unseen while its new children are counted. Raises Invalid (per item index
    when ARRAY) for an unknown id, a bad position, or a cap exceeded.
    """
    problems: dict[str, Any] = {}

    def refuse(index: int, message: str) -> None:
        entry = {"dependsOn": [message]}
        if array:
            problems.setdefault(str(index), {}).update(entry)
        else:
            problems.update(entry)

    wanted: set[str] = set()
    for data in items:
        wanted |= {ref for ref in data.get("depends_on") or () if isinstance(ref, str)}
    existing: dict[str, Job] = {}
    if wanted:
        qs = Job.objects.filter(space_id=space_id, pk__in=sorted(wanted)).order_by("pk")
        existing = {
            job.pk: job
            for job in _lock(qs).only("id", "space_id", "status", "has_children", "name")
        }

    links = Links()
    new_ids = {job.pk for job, created in results if created}
    new_children: dict[str, int] = defaultdict(int)  # parent id -> children added here
    last_linked: dict[str, int] = {}  # parent id -> the last item index naming it
    for index, (data, (job, created)) in enumerate(zip(items, results, strict=True)):
        refs = data.get("depends_on") or []
        if not created or not refs:
            continue  # an idempotent repeat keeps the job it names
        parents: list[Job] = []
        for ref in refs:
            if isinstance(ref, int):
                if not array:
                    refuse(index, "Positions refer to items of an array create")
                elif not 0 <= ref < index:
                    refuse(index, f"Position {ref} is not an earlier item of this request")
                else:
                    parents.append(results[ref][0])
            elif ref in existing:
                parents.append(existing[ref])
            else:
                refuse(index, f"No job {ref} in this space")
        unique = list({parent.pk: parent for parent in parents}.values())
        if len(unique) > MAX_PARENTS:
            refuse(index, f"At most {MAX_PARENTS} parents")
        if problems:
            continue
        policy = data.get("on_parent_failure") or CANCEL
        job.on_parent_failure = policy
        job.parent_count = len(unique)
        job.waiting_parents = sum(1 for p in unique if p.status not in FINISHED)
        failed = any(p.status in FAILED for p in unique)
        if (failed and policy == CANCEL) or job.waiting_parents:
            # Inserted blocked; a cancelled one is killed right after its `created` event.
            job.status = Status.BLOCKED
            if failed and policy == CANCEL:
                links.doomed.append(job)
        for position, parent in enumerate(unique):
            links.edges.append(JobDependency(parent=parent, child=job, position=position))
            new_children[parent.pk] += 1
            last_linked[parent.pk] = index
            if parent.pk in new_ids:
                parent.has_children = True  # a new job of this request: inserted with it
            else:
                links.existing_parents.add(parent.pk)
    if problems:
        raise _invalid(problems)
    for parent_id in _over_fan_out(new_children, links.existing_parents):
        refuse(
            last_linked[parent_id], f"Job {parent_id} would have more than {MAX_CHILDREN} children"
        )
    if problems:
        raise _invalid(problems)
    return links


def _over_fan_out(new_children: dict[str, int], existing: set[str]) -> list[str]:
    """The parents that would have more than MAX_CHILDREN children with NEW_CHILDREN added
    (EXISTING: those with children from earlier requests, counted on the edge index)."""
    have: dict[str, int] = {}
    if existing:
        have = dict(
            JobDependency.objects.filter(parent_id__in=existing)
            .values("parent_id")
            .annotate(n=Count("id"))
            .values_list("parent_id", "n")
        )
    return sorted(pid for pid, n in new_children.items() if have.get(pid, 0) + n > MAX_CHILDREN)


def finish_links(links: Links, now: datetime) -> None:
    """After the insert: the edges, the parents' flag, and the children born cancelled."""
    JobDependency.objects.bulk_create(links.edges)
    if links.existing_parents:
        Job.objects.filter(pk__in=links.existing_parents, has_children=False).update(
            has_children=True
        )
    if links.doomed:
        _kill(links.doomed, now)
        # Their children made in the same request counted them as waiting: they follow now.
        parents_finished(links.doomed, now)


# --- a parent finished -----------------------------------------------------------------------


def parents_finished(parents: Iterable[Job], now: datetime | None = None) -> None:
    """PARENTS just reached a terminal status in the caller's transaction: settle their
    children (see the module's opening). Costs nothing for jobs without children."""
    frontier = [p for p in parents if p.has_children and p.status in FINISHED]
    if not frontier:
        return
    now = now or timezone.now()
    seen: set[str] = set()
    while frontier:
        seen |= {p.pk for p in frontier}
        outcome = {p.pk: p.status for p in frontier}
        edges = list(
            JobDependency.objects.filter(parent_id__in=list(outcome)).values_list(
                "parent_id", "child_id"
            )
        )
        finished_by: dict[str, int] = defaultdict(int)
        failed_by: set[str] = set()
        for parent_id, child_id in edges:
            finished_by[child_id] += 1
            if outcome[parent_id] in FAILED:
                failed_by.add(child_id)
        children = _lock_blocked(sorted(set(finished_by) - seen))
        killed: list[Job] = []
        released: list[Job] = []
        by_decrement: dict[int, list[str]] = defaultdict(list)
        for child in children:
            if child.pk in failed_by and child.on_parent_failure == CANCEL:
                killed.append(child)
            elif child.waiting_parents - finished_by[child.pk] <= 0:
                released.append(child)
            else:
                by_decrement[finished_by[child.pk]].append(child.pk)
        # The counter moves under the row lock taken above: a concurrent parent waits for it
        # and then sees this value, so the last one to finish is the one that releases.
        for n, ids in by_decrement.items():
            Job.objects.filter(pk__in=ids).update(
                waiting_parents=F("waiting_parents") - n, updated_at=now
            )
        _release(released, now)
        _kill(killed, now)
        frontier = [child for child in killed if child.has_children]


_CHILD_FIELDS = (
    "id",
    "space_id",
    "status",
    "attempt_number",
    "waiting_parents",
    "parent_count",
    "on_parent_failure",
    "has_children",
    "last_error",
)


def _lock_blocked(ids: list[str]) -> list[Job]:
    if not ids:
        return []
    qs = Job.objects.filter(pk__in=ids, status=Status.BLOCKED).order_by("pk")
    return list(_lock(qs).only(*_CHILD_FIELDS))


def _release(children: list[Job], now: datetime, reason: str = "parents_finished") -> None:
    """Blocked (or cancelled) CHILDREN whose parents are all done become pending."""
    if not children:
        return
    built = []
    for child in children:
        previous = child.status
        child.status = Status.PENDING
        child.waiting_parents = 0
        child.available_at = now
        child.completed_at = None
        child.last_error = ""
        built.append(events.build(child, "pending", {"reason": reason}, previous_status=previous))
    Job.objects.filter(pk__in=[c.pk for c in children]).update(
        status=Status.PENDING,
        waiting_parents=0,
        available_at=now,
        completed_at=None,
        last_error="",
        updated_at=now,
    )
    events.record_many(built)
    space_ids = {c.space_id for c in children}
    transaction.on_commit(lambda: wakeup.notify(space_ids), robust=True)


def _kill(children: list[Job], now: datetime) -> None:
    """Cancel CHILDREN because a parent failed (the caller cascades to their own children)."""
    if not children:
        return
    built = []
    for child in children:
        previous = child.status
        child.status = Status.KILLED
        child.completed_at = now
        child.last_error = PARENT_FAILED
        built.append(
            events.build(child, "killed", {"reason": PARENT_FAILED}, previous_status=previous)
        )
    Job.objects.filter(pk__in=[c.pk for c in children]).update(
        status=Status.KILLED, completed_at=now, last_error=PARENT_FAILED, updated_at=now
    )
    events.record_many(built)


# --- a parent retried ------------------------------------------------------------------------


def parents_retried(parents: Iterable[Job], now: datetime | None = None) -> None:
    """PARENTS (dead or killed) were just re-queued in the caller's transaction: the children
    they cancelled come back (blocked again, transitively), and blocked "run" children that
    had counted them as finished wait for them again. A retried job that is itself a child
    waits again for its parents not finished."""
    parents = list(parents)
    now = now or timezone.now()
    _wait_again([p for p in parents if p.parent_count], now)
    frontier = [p for p in parents if p.has_children]
    seen: set[str] = set()
    while frontier:
        seen |= {p.pk for p in frontier}
        child_ids = (
            set(
                JobDependency.objects.filter(parent_id__in=[p.pk for p in frontier]).values_list(
                    "child_id", flat=True
                )
            )
            - seen
        )
        if not child_ids:
            return
        qs = (
            Job.objects.filter(pk__in=sorted(child_ids))
            .filter(Q(status=Status.BLOCKED) | Q(status=Status.KILLED, last_error=PARENT_FAILED))
            .order_by("pk")
        )
        children = list(_lock(qs).only(*_CHILD_FIELDS))
        state = parent_state([c.pk for c in children])
        restored: list[Job] = []
        for child in children:
            waiting, failed = state.get(child.pk, (0, 0))
            if child.status == Status.BLOCKED:
                if waiting != child.waiting_parents:
                    Job.objects.filter(pk=child.pk).update(waiting_parents=waiting, updated_at=now)
                continue
            if failed and child.on_parent_failure == CANCEL:
                continue  # another parent is still dead: it stays cancelled
            restored.append(child)
            _block_again(child, waiting, now)
        frontier = [c for c in restored if c.has_children]


def _wait_again(jobs: list[Job], now: datetime) -> None:
    """Retried JOBS that have parents not finished wait for them again (blocked) rather than
    run before them. With every parent finished they stay pending: a retry by hand runs the
    job even after a failed parent, with the parents' outcomes in its descriptor."""
    if not jobs:
        return
    state = parent_state([job.pk for job in jobs])
    for job in jobs:
        waiting, _ = state.get(job.pk, (0, 0))
        if not waiting:
            continue
        previous = job.status
        job.status = Status.BLOCKED
        job.waiting_parents = waiting
        Job.objects.filter(pk=job.pk).update(
            status=Status.BLOCKED, waiting_parents=waiting, updated_at=now
        )
        events.record(job, "blocked", {"reason": "waiting_for_parents"}, previous_status=previous)


def _block_again(child: Job, waiting: int, now: datetime) -> None:
    if waiting == 0:
        _release([child], now, reason="parent_retried")
        return
    previous = child.status
    child.status = Status.BLOCKED
    child.waiting_parents = waiting
    child.completed_at = None
    child.last_error = ""
    Job.objects.filter(pk=child.pk).update(
        status=Status.BLOCKED,
        waiting_parents=waiting,
        completed_at=None,
        last_error="",
        updated_at=now,
    )
    events.record(child, "blocked", {"reason": "parent_retried"}, previous_status=previous)


def parent_state(child_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """{child id: (parents not finished, parents dead or killed)} from the parents' rows."""
    if not child_ids:
        return {}
    rows = (
        JobDependency.objects.filter(child_id__in=list(child_ids))
        .values("child_id")
        .annotate(
            waiting=Count("id", filter=~Q(parent__status__in=FINISHED)),
            failed=Count("id", filter=Q(parent__status__in=FAILED)),
        )
        .values_list("child_id", "waiting", "failed")
    )
    return {child_id: (waiting, failed) for child_id, waiting, failed in rows}


# --- repair ----------------------------------------------------------------------------------


def repair_blocked(now: datetime | None = None) -> dict[str, int]:
    """Maintenance step: children left blocked although their parents are all done.

    The lifecycle settles children in the parent's own transaction, so this finds nothing in a
    healthy database; it mends what a crash, a restore or a hand edit left behind: a counter
    that disagrees with the parents' rows, or a parent row that is gone. Each blocked job
    untouched for REPAIR_AFTER_SECONDS is checked against its parents' rows, a batch at a time
    in id order; several schedulers skip each other's rows.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=REPAIR_AFTER_SECONDS)
    fixed = {"released": 0, "cancelled": 0, "recounted": 0}
    last = ""
    while True:
        with transaction.atomic():
            qs = Job.objects.filter(status=Status.BLOCKED, updated_at__lt=cutoff, pk__gt=last)
            qs = qs.order_by("pk")
            if connection.vendor == "postgresql":
                qs = qs.select_for_update(skip_locked=True)
            batch = list(qs.only(*_CHILD_FIELDS)[:REPAIR_BATCH])
            if not batch:
                return fixed
            last = batch[-1].pk
            state = parent_state([job.pk for job in batch])
            released, killed = [], []
            for job in batch:
                waiting, failed = state.get(job.pk, (0, 0))
                if failed and job.on_parent_failure == CANCEL:
                    killed.append(job)
                elif waiting == 0:
                    released.append(job)
                elif waiting != job.waiting_parents:
                    Job.objects.filter(pk=job.pk).update(waiting_parents=waiting, updated_at=now)
                    fixed["recounted"] += 1
            _release(released, now, reason="repaired")
            _kill(killed, now)
            parents_finished(killed, now)  # their own cancel children follow
            fixed["released"] += len(released)
            fixed["cancelled"] += len(killed)
        if len(batch) < REPAIR_BATCH:
            return fixed


# --- retention ---------------------------------------------------------------------------------


def without_waiting_children(qs: QuerySet[Job]) -> QuerySet[Job]:
    """QS less the parents whose children still wait (blocked): retention keeps those.

    Plain jobs pass on their flag; the subquery runs only for parents (the edge's unique
    (parent, child) index)."""
    waiting = JobDependency.objects.filter(parent_id=OuterRef("pk"), child__status=Status.BLOCKED)
    return qs.filter(Q(has_children=False) | ~Exists(waiting))


# --- reads -----------------------------------------------------------------------------------


def attach_parents(jobs: Sequence[Job]) -> None:
    """Set `workflow_parents` on each of JOBS (the descriptor's `parents`): one query when any
    of them has parents, none otherwise."""
    for job in jobs:
        job.workflow_parents = []
    wanted = {job.pk: job for job in jobs if getattr(job, "parent_count", 0)}
    if not wanted:
        return
    # A result too long to give is not even read: its length is measured in the query (in
    # characters, never more than its bytes; the bytes are checked on what is read).
    length = Length(Cast("parent__result", TextField()))
    rows = (
        JobDependency.objects.filter(child_id__in=list(wanted))
        .order_by("child_id", "position")
        .annotate(
            result_length=length,
            small_result=Case(
                When(result_length__lte=PARENT_RESULT_MAX_BYTES, then=F("parent__result")),
                default=Value(None),
                output_field=Job._meta.get_field("result"),
            ),
        )
        .values_list(
            "child_id",
            "parent_id",
            "parent__name",
            "parent__status",
            "small_result",
            "result_length",
            "parent__last_error",
        )
    )
    budget: dict[str, int] = defaultdict(lambda: PARENTS_MAX_BYTES)
    for child_id, parent_id, name, status, result, length, error in rows:
        entry: dict[str, Any] = {"id": parent_id, "name": name, "status": status, "result": None}
        if result is None and length is not None and length > PARENT_RESULT_MAX_BYTES:
            entry["resultTruncated"] = True
        elif result is not None:
            size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
            if size <= PARENT_RESULT_MAX_BYTES and size <= budget[child_id]:
                entry["result"] = result
                budget[child_id] -= size
            else:
                entry["resultTruncated"] = True
        if status in FAILED:
            entry["error"] = (error or None) and error[:PARENT_ERROR_MAX_CHARS]
        wanted[child_id].workflow_parents.append(entry)


def relatives(job: Job) -> tuple[list[Job], list[Job]]:
    """(parents, children) of JOB, each in a stable order, with id, name and status."""
    fields = ("id", "name", "status", "space_id")
    parents = list(
        Job.objects.filter(child_links__child=job).order_by("child_links__position").only(*fields)
    )
    children = list(
        Job.objects.filter(parent_links__parent=job).order_by("id").only(*fields)[:MAX_CHILDREN]
    )
    return parents, children


# The most jobs the workflow graph of a job page walks.
GRAPH_LIMIT = 200


@dataclass
class Graph:
    """A job's workflow: its jobs by depth from the roots, and the edges between them."""

    levels: list[list[Job]]
    edges: list[tuple[str, str]]
    truncated: bool


def workflow_graph(job: Job, limit: int = GRAPH_LIMIT) -> Graph:
    """The connected workflow around JOB (up to LIMIT jobs), roots first, for the job page.

    Walks the edges both ways a frontier at a time (one query per step); the depth of a job is
    the longest path from a root to it.
    """
    fields = ("id", "name", "status", "space_id")
    nodes: dict[str, Job] = {job.pk: job}
    edges: set[tuple[str, str]] = set()
    frontier = {job.pk}
    truncated = False
    while frontier:
        found = list(
            JobDependency.objects.filter(Q(parent_id__in=frontier) | Q(child_id__in=frontier))
            .values_list("parent_id", "child_id")
            .order_by("parent_id", "child_id")[: limit * 4]
        )
        new_ids: set[str] = set()
        for parent_id, child_id in found:
            edges.add((parent_id, child_id))
            new_ids |= {parent_id, child_id} - set(nodes)
        if len(nodes) + len(new_ids) > limit:
            truncated = True
            new_ids = set(sorted(new_ids)[: max(0, limit - len(nodes))])
        for other in Job.objects.filter(pk__in=new_ids).only(*fields):
            nodes[other.pk] = other
        frontier = new_ids
    edges = {(p, c) for p, c in edges if p in nodes and c in nodes}
    depth = dict.fromkeys(nodes, 0)
    # Longest path from a root: relax the edges at most len(nodes) times (no cycles exist).
    for _ in range(len(nodes)):
        changed = False
        for parent_id, child_id in edges:
            if depth[child_id] < depth[parent_id] + 1:
                depth[child_id] = depth[parent_id] + 1
                changed = True
        if not changed:
            break
    levels: list[list[Job]] = [[] for _ in range(max(depth.values()) + 1)]
    for node_id in sorted(nodes):
        levels[depth[node_id]].append(nodes[node_id])
    return Graph(levels=levels, edges=sorted(edges), truncated=truncated)
