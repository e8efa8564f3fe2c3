from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from ulid import ULID

from lib.fields import EncryptedJSONField
from lib.jsonsafe import SafeJSONField
from spaces.models import Space


def new_job_id() -> str:
    # ULIDs sort by creation time, so "newest first" is an index scan on the primary key.
    return str(ULID())


class Job(models.Model):
    class Status(models.TextChoices):
        # Waiting for its parents (dependsOn, jobs/workflows.py): never polled nor claimable.
        BLOCKED = "blocked", "Blocked"
        SCHEDULED = "scheduled", "Scheduled"
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        DEAD = "dead", "Dead"
        KILLED = "killed", "Killed"

    TERMINAL = (Status.COMPLETED, Status.DEAD, Status.KILLED)
    ACTIVE = (Status.BLOCKED, Status.SCHEDULED, Status.PENDING, Status.DELIVERED, Status.RUNNING)

    id = models.CharField(primary_key=True, max_length=26, default=new_job_id, editable=False)
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=200)
    payload = SafeJSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    priority = models.IntegerField(default=0)

    max_retries = models.PositiveSmallIntegerField(default=3)
    # 1 for the first attempt; a failure with attempts left moves to the next one.
    attempt_number = models.PositiveSmallIntegerField(default=1)
    # How often the job was handed out without an ack since it last ran (poison-job guard).
    delivery_count = models.PositiveSmallIntegerField(default=0)
    timeout_seconds = models.PositiveIntegerField(default=300)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # When the job became (or will become) available: orders the queue and drives
    # scheduled -> pending.
    available_at = models.DateTimeField(default=timezone.now)
    backoff = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    # Per-key flow control (jobs/flow.py): a customer or tenant id; the name's limit per key
    # then holds for each distinct value. Null: bound by the name's limits only.
    concurrency_key = models.CharField(max_length=200, null=True, blank=True)

    callback_url = models.CharField(max_length=2000, blank=True, default="")
    callback_headers = EncryptedJSONField(default=dict, blank=True)  # values are secrets

    result = SafeJSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    progress = SafeJSONField(null=True, blank=True)

    claim_id = models.CharField(max_length=26, null=True, blank=True)
    # The worker the job was last handed to (its X-Worker-Id, or "key:<prefix>" without one),
    # written by the statement that claims it; "held" while delivered or running.
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    # The last failed attempt: when, and its error's group (jobs/fingerprint.py).
    failed_at = models.DateTimeField(null=True, blank=True)
    error_fingerprint = models.CharField(max_length=16, blank=True, default="")
    delivery_deadline = models.DateTimeField(null=True, blank=True)
    execution_deadline = models.DateTimeField(null=True, blank=True)
    log_seq = models.PositiveIntegerField(default=0)

    # Workflows (jobs/workflows.py, docs/workflows.md). On a child: its parents, how many of
    # them are not finished yet (blocked until 0) and what a failed parent does to it. On a
    # parent: whether any job depends on it, so a plain job's lifecycle never looks.
    # Defaults in the database too: rows inserted by plain SQL (bench/, restores) are plain jobs.
    parent_count = models.PositiveSmallIntegerField(default=0, db_default=0)
    waiting_parents = models.PositiveSmallIntegerField(default=0, db_default=0)
    on_parent_failure = models.CharField(
        max_length=6,
        choices=[("cancel", "Cancel"), ("run", "Run")],
        default="cancel",
        db_default="cancel",
    )
    has_children = models.BooleanField(default=False, db_default=False)
    # A member of a group with a completion step (jobs/groups.py); null for any other job.
    # Its terminal moves count on the group row, so its complete takes the locking path.
    group = models.ForeignKey(
        "JobGroup",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        db_index=False,  # job_group_member_idx below: most jobs have none
    )

    delivered_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # poll: WHERE space_id = ? AND status = 'pending'
            #       ORDER BY priority DESC, available_at, id  ... FOR UPDATE SKIP LOCKED
            models.Index(
                "space",
                models.F("priority").desc(),
                "available_at",
                "id",
                condition=Q(status="pending"),
                name="job_pending_queue_idx",
            ),
            # poll with a name filter: WHERE space_id = ? AND status = 'pending' AND name IN (...)
            models.Index(
                "space",
                "name",
                models.F("priority").desc(),
                "available_at",
                "id",
                condition=Q(status="pending"),
                name="job_pending_name_idx",
            ),
            # sweeper: WHERE status = 'scheduled' AND available_at <= now()
            models.Index(
                fields=["available_at"],
                condition=Q(status="scheduled"),
                name="job_scheduled_due_idx",
            ),
            # sweeper: WHERE status = 'delivered' AND delivery_deadline <= now()
            models.Index(
                fields=["delivery_deadline"],
                condition=Q(status="delivered"),
                name="job_delivery_deadline_idx",
            ),
            # sweeper: WHERE status = 'running' AND execution_deadline <= now()
            models.Index(
                fields=["execution_deadline"],
                condition=Q(status="running"),
                name="job_execution_deadline_idx",
            ),
            # list: WHERE space_id = ? [AND status = ?] ORDER BY id DESC (keyset by id)
            models.Index(fields=["space", "-id"], name="job_space_list_idx"),
            models.Index(fields=["space", "status", "-id"], name="job_space_status_list_idx"),
            models.Index(fields=["space", "name", "-id"], name="job_space_name_list_idx"),
            # flow control: SELECT count(*) WHERE space_id = ? AND name = ?
            #               AND status IN ('delivered', 'running')
            models.Index(
                fields=["space", "name"],
                condition=Q(status__in=["delivered", "running"]),
                name="job_inflight_name_idx",
            ),
            # per-key limits: SELECT name, concurrency_key, count(*) WHERE space_id = ?
            #   AND name IN (...) AND status IN ('delivered', 'running')
            #   AND concurrency_key IS NOT NULL GROUP BY name, concurrency_key
            models.Index(
                fields=["space", "name", "concurrency_key"],
                condition=Q(status__in=["delivered", "running"], concurrency_key__isnull=False),
                name="job_inflight_key_idx",
            ),
            # workers view: WHERE space_id = ? AND worker_id = ? AND status IN (delivered, running)
            models.Index(
                fields=["space", "worker_id"],
                condition=Q(status__in=["delivered", "running"]),
                name="job_worker_held_idx",
            ),
            # errors view: WHERE space_id = ? AND error_fingerprint <> '' GROUP BY
            # error_fingerprint (and one group's jobs: AND error_fingerprint = ?)
            models.Index(
                fields=["space", "error_fingerprint", "failed_at"],
                condition=~Q(error_fingerprint=""),
                name="job_error_group_idx",
            ),
            # workflow repair: WHERE status = 'blocked' AND id > ? ORDER BY id
            models.Index(fields=["id"], condition=Q(status="blocked"), name="job_blocked_idx"),
            # groups: a group's members by status (the repair's "any still active?", member
            # ids of the completion job); jobs outside a group are not in it.
            models.Index(
                fields=["group", "status"],
                condition=Q(group__isnull=False),
                name="job_group_member_idx",
            ),
            # retention: WHERE space_id = ? AND status IN (finished) AND completed_at < cutoff
            models.Index(
                fields=["space", "status", "completed_at"],
                condition=Q(status__in=["completed", "dead", "killed"]),
                name="job_finished_idx",
            ),
        ]
        constraints = [
            # Idempotent create: concurrent duplicates race on this index and one wins.
            models.UniqueConstraint(
                fields=["space", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class JobDependency(models.Model):
    """One edge of a workflow: CHILD waits for PARENT (jobs/workflows.py).

    Both jobs are of one space and the parent existed before the child, so edges never form a
    cycle. Later kinds of flow (a group's completion step, concurrency per key) get tables of
    their own beside this one; an edge stays parent -> child.
    """

    # Indexed by the unique (parent, child) constraint: a parent's children.
    parent = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="child_links", db_index=False
    )
    # Indexed by (child, position): a child's parents, in the order dependsOn gave them.
    child = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="parent_links", db_index=False
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["parent", "child"], name="jobdependency_unique"),
        ]
        indexes = [models.Index(fields=["child", "position"], name="jobdependency_child_idx")]

    def __str__(self) -> str:
        return f"{self.child_id} after {self.parent_id}"


class JobGroup(models.Model):
    """Jobs created together whose end starts one more job: the completion step (a chord).

    Members carry `group_id`. Each terminal move of a member (completed, dead, killed) is
    counted here in the member's own transaction, under this row's lock; the move that makes
    the counts reach `total` creates the completion job from `on_complete` and sets
    `completion_job_id` and `fired_at` with an UPDATE conditional on them being unset, so it
    happens exactly once (jobs/groups.py, docs/workflows.md). A fired group is closed.
    """

    # Opaque and public like a job id (a ULID): the job JSON's groupId is this column.
    id = models.CharField(primary_key=True, max_length=26, default=new_job_id, editable=False)
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="job_groups")
    name = models.CharField(max_length=200)
    total = models.PositiveIntegerField()
    completed = models.PositiveIntegerField(default=0)
    dead = models.PositiveIntegerField(default=0)
    killed = models.PositiveIntegerField(default=0)
    # The completion job's create body, validated like any (internal names); its callback
    # headers are secrets, kept apart and encrypted like a job's.
    on_complete = SafeJSONField(default=dict)
    on_complete_headers = EncryptedJSONField(default=dict, blank=True)
    # Set once, together, by the conditional UPDATE that fires the group. Not a foreign key:
    # retention may delete the completion job, and the group must still read as fired.
    completion_job_id = models.CharField(max_length=26, null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # the space's groups list: WHERE space_id = ? ORDER BY id DESC
            models.Index(fields=["space", "-id"], name="jobgroup_space_idx"),
            # repair: WHERE fired_at IS NULL (open groups only)
            models.Index(
                fields=["id"], condition=Q(fired_at__isnull=True), name="jobgroup_open_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id} ({self.done}/{self.total})"

    @property
    def done(self) -> int:
        return self.completed + self.dead + self.killed


class JobEvent(models.Model):
    """One row per transition or worker call: the audit log, the stream source and the outbox."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Job.Status.choices)
    # The status before the event, when the event changed it (None for a new job); the
    # sequencer derives the per-status counts from (previous_status -> status).
    previous_status = models.CharField(
        max_length=10, choices=Job.Status.choices, null=True, blank=True
    )
    data = SafeJSONField(null=True, blank=True)
    attempt_number = models.PositiveSmallIntegerField(default=1)
    # Per-space stream sequence, assigned in commit order by the sequencer (jobs/streams.py).
    seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # job detail and replay of one job: WHERE job_id = ? ORDER BY id
            models.Index(fields=["job", "id"], name="jobevent_job_idx"),
            # space stream replay: WHERE space_id = ? AND seq > ? ORDER BY seq
            models.Index(fields=["space", "seq"], name="jobevent_space_seq_idx"),
            # throughput chart: WHERE space_id = ? AND type IN (...) AND created_at >= ?
            models.Index(fields=["space", "type", "created_at"], name="jobevent_space_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} of {self.job_id}"


class JobLog(models.Model):
    class Level(models.TextChoices):
        # Least to most severe; kept as the worker sent them (filterable by each).
        TRACE = "trace", "Trace"
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARN = "warn", "Warn"
        ERROR = "error", "Error"
        FATAL = "fatal", "Fatal"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    seq = models.PositiveIntegerField()
    level = models.CharField(max_length=5, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    timestamp = models.DateTimeField()
    attributes = SafeJSONField(default=dict, blank=True)
    attempt_number = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["job_id", "seq"]
        constraints = [
            # reading by cursor: WHERE job_id = ? AND seq > ? ORDER BY seq
            models.UniqueConstraint(fields=["job", "seq"], name="joblog_unique_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.seq} {self.level}"


class NameLimit(models.Model):
    """Flow control for one job name in a space: how many may be delivered or running at once
    (`concurrency`) and how many may be handed out per second (`rate`, a token bucket); and the
    same for each distinct concurrency key of the name (`key_concurrency`, `key_rate`).

    Poll and claim lock this row while they hand out jobs of this name, so the limits hold
    under concurrent pollers; names without a row are never slowed by it.
    """

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="name_limits")
    name = models.CharField(max_length=200)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    rate = models.FloatField(null=True, blank=True)
    # For each distinct Job.concurrency_key of this name (jobs without a key: not bound).
    key_concurrency = models.PositiveIntegerField(null=True, blank=True)
    key_rate = models.FloatField(null=True, blank=True)
    # Token bucket state for `rate`: tokens left at `refilled_at` (capacity: one second's worth).
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["space_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="namelimit_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: concurrency={self.concurrency} rate={self.rate}"


class KeyBucket(models.Model):
    """The token bucket of one concurrency key under a limit's `key_rate`, made on demand.

    Read and written only under the NameLimit row's lock (jobs/flow.py). A key without a row
    has a full bucket, so rows idle long enough to be full again are deleted."""

    limit = models.ForeignKey(NameLimit, on_delete=models.CASCADE, related_name="key_buckets")
    key = models.CharField(max_length=200)
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField()

    class Meta:
        constraints = [
            # the poll's upsert of touched buckets (ON CONFLICT (limit_id, key))
            models.UniqueConstraint(fields=["limit", "key"], name="keybucket_unique_key"),
        ]
        indexes = [
            # poll: WHERE limit_id = ? AND refilled_at > ? (buckets not full), and pruning
            models.Index(fields=["limit", "refilled_at"], name="keybucket_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.limit_id}/{self.key}: {self.tokens}"


# --- the operator's figures (jobs/rollups.py, jobs/workers.py; docs/dashboard.md) ------------


class WorkerSighting(models.Model):
    """A worker seen polling: by the id it sends (X-Worker-Id) or, without one, by its key.

    Written at most once per SIGHTING_EVERY seconds per worker and process (jobs/workers.py),
    never per poll."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    worker_id = models.CharField(max_length=200)
    key = models.ForeignKey("spaces.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "worker_id"], name="workersighting_unique"),
        ]
        indexes = [
            # space list: the latest sighting per space
            models.Index(fields=["space", "-last_seen_at"], name="workersighting_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.last_seen_at})"


class NameRollup(models.Model):
    """Per (space, job name, minute): what happened, from the job events (jobs/rollups.py).

    Run and wait times are kept as counts per fixed log bucket (rollups.BOUNDS_MS), which give
    p50/p95 of any range of minutes without storing samples."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    bucket = models.DateTimeField()  # the minute's start, UTC
    created = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)  # failed attempts (retried or dead)
    dead = models.PositiveIntegerField(default=0)
    run_hist = models.JSONField(default=list)
    run_ms_sum = models.BigIntegerField(default=0)
    wait_hist = models.JSONField(default=list)
    wait_ms_sum = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "name", "bucket"], name="namerollup_unique"),
        ]
        indexes = [
            # overview: WHERE space_id = ? AND bucket >= now - 1 h; pruning: bucket < cutoff
            models.Index(fields=["space", "bucket"], name="namerollup_recent_idx"),
            models.Index(fields=["bucket"], name="namerollup_prune_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.bucket}"


class WorkerRollup(models.Model):
    """Per (space, worker, minute): attempts the worker finished, from the job events."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    worker_id = models.CharField(max_length=200)
    bucket = models.DateTimeField()
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["space", "worker_id", "bucket"], name="workerrollup_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["space", "bucket"], name="workerrollup_recent_idx"),
            models.Index(fields=["bucket"], name="workerrollup_prune_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.worker_id} @ {self.bucket}"


class NameState(models.Model):
    """Jobs of one name per active status now, moved by the rollup from each event's
    (previous_status -> status), as the sequencer moves the space's counts."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    scheduled = models.IntegerField(default=0)
    pending = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    running = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="namestate_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.pending} pending, {self.running} running"


class RollupCursor(models.Model):
    """How far the rollup has read a space's events: the last seq applied."""

    space = models.OneToOneField(
        Space, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.space_id} @ {self.seq}"
