"""The operator's questions for scripts (docs/api.md, Operator): the workers of a space, the
overview per job name, and the error groups with retry and kill of a whole group.

The figures come from jobs/rollups.py (kept by the scheduler, never a scan of the jobs table
per call); the group actions are the lifecycle's bulk retry and kill (jobs/services.py).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import queries, rollups, services
from lib.errors import Invalid, NotFound
from spaces import scopes

from .views import ApiView, _errors


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def worker_json(w: rollups.WorkerFigures) -> dict:
    return {
        "workerId": w.worker_id,
        "key": {"name": w.key_name, "prefix": w.key_prefix} if w.key_prefix else None,
        "firstSeenAt": queries.iso(w.first_seen_at),
        "lastSeenAt": queries.iso(w.last_seen_at),
        "secondsSinceSeen": round(w.seconds_since_seen, 1),
        "idle": w.idle,
        "holding": w.held,
        "heldJobIds": w.held_ids,
        "lastHour": {"completed": w.completed, "failed": w.failed},
    }


def name_json(f: rollups.NameFigures) -> dict:
    rate = f.failure_rate
    return {
        "name": f.name,
        "pending": f.pending,
        "scheduled": f.scheduled,
        "delivered": f.delivered,
        "running": f.running,
        "oldestPendingAt": queries.iso(f.oldest_pending_at),
        "oldestPendingSeconds": _ms(f.oldest_pending_seconds),
        "lastHour": {
            "created": f.created,
            "completed": f.completed,
            "failed": f.failed,
            "dead": f.dead,
            "failureRate": None if rate is None else round(rate, 4),
            "runMs": {"p50": _ms(f.run_p50), "p95": _ms(f.run_p95)},
            "waitMs": {"p50": _ms(f.wait_p50), "p95": _ms(f.wait_p95)},
        },
        "limit": {
            "concurrency": f.concurrency,
            "rate": f.rate,
            "inFlight": f.in_flight,
        },
    }


def group_json(g: rollups.ErrorGroup) -> dict:
    return {
        "fingerprint": g.fingerprint,
        "error": g.template,
        "count": g.count,
        "dead": g.dead,
        "names": g.names,
        "firstSeenAt": queries.iso(g.first_seen_at),
        "lastSeenAt": queries.iso(g.last_seen_at),
        "sample": {"jobId": g.sample_job_id, "error": g.sample_error[:2000]},
    }


# --- OpenAPI shapes --------------------------------------------------------------------------


class _KeySerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField()


class _DoneSerializer(serializers.Serializer):
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()


class WorkerSerializer(serializers.Serializer):
    workerId = serializers.CharField(help_text="X-Worker-Id, or key:<prefix> without one")
    key = _KeySerializer(allow_null=True)
    firstSeenAt = serializers.DateTimeField()
    lastSeenAt = serializers.DateTimeField(help_text="Last poll or claim (within 5 s)")
    secondsSinceSeen = serializers.FloatField()
    idle = serializers.BooleanField(help_text="Not seen for more than 2 minutes")
    holding = serializers.IntegerField(help_text="Jobs delivered to it or running now")
    heldJobIds = serializers.ListField(child=serializers.CharField(), help_text="Up to 5")
    lastHour = _DoneSerializer()


class WorkerListSerializer(serializers.Serializer):
    workers = WorkerSerializer(many=True)
    idle = serializers.BooleanField(help_text="Pending jobs and no worker seen for 2 minutes")


class _PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class _HourSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed attempts (retried or dead)")
    dead = serializers.IntegerField()
    failureRate = serializers.FloatField(allow_null=True, help_text="failed / (completed+failed)")
    runMs = _PercentilesSerializer()
    waitMs = _PercentilesSerializer()


class _LimitSerializer(serializers.Serializer):
    concurrency = serializers.IntegerField(allow_null=True)
    rate = serializers.FloatField(allow_null=True)
    inFlight = serializers.IntegerField()


class NameOverviewSerializer(serializers.Serializer):
    name = serializers.CharField()
    pending = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    delivered = serializers.IntegerField()
    running = serializers.IntegerField()
    oldestPendingAt = serializers.DateTimeField(allow_null=True)
    oldestPendingSeconds = serializers.FloatField(allow_null=True)
    lastHour = _HourSerializer()
    limit = _LimitSerializer()


class OverviewSerializer(serializers.Serializer):
    names = NameOverviewSerializer(many=True)


class _SampleSerializer(serializers.Serializer):
    jobId = serializers.CharField()
    error = serializers.CharField()


class ErrorGroupSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    error = serializers.CharField(help_text="The first line, numbers and ids blanked")
    count = serializers.IntegerField(help_text="Jobs whose last failure is this, not completed")
    dead = serializers.IntegerField()
    names = serializers.ListField(child=serializers.CharField())
    firstSeenAt = serializers.DateTimeField(allow_null=True)
    lastSeenAt = serializers.DateTimeField(allow_null=True)
    sample = _SampleSerializer()


class ErrorGroupListSerializer(serializers.Serializer):
    groups = ErrorGroupSerializer(many=True)


class GroupActionSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    action = serializers.ChoiceField(choices=["retry", "kill"])
    count = serializers.IntegerField(help_text="Jobs retried or killed")


class GroupKillBodySerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


# --- views -----------------------------------------------------------------------------------


class WorkersView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="listWorkers",
        summary="Workers seen polling the space: last seen, jobs held, the last hour's counts",
        responses={200: WorkerListSerializer, **_errors(400, 401, 403, 404, 429)},
        tags=["workers"],
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        space = self.key.space
        found = rollups.workers(space)
        pending = queries.space_counts(space).get("pending", 0)
        seen_at = max((w.last_seen_at for w in found), default=None)
        idle = rollups.space_idle(space, pending, seen_at) is not None
        return Response({"workers": [worker_json(w) for w in found], "idle": idle})


class OverviewView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="getOverview",
        summary="Per job name: pending, oldest pending, running, the last hour, the limit",
        responses={200: OverviewSerializer, **_errors(400, 401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        return Response({"names": [name_json(f) for f in rollups.overview(self.key.space)]})


class ErrorGroupsView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="listErrorGroups",
        summary="Failures grouped by error fingerprint, the most recently seen first",
        responses={200: ErrorGroupListSerializer, **_errors(400, 401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        groups = rollups.error_groups(self.key.space)
        return Response({"groups": [group_json(g) for g in groups]})


FINGERPRINT_PARAM = OpenApiParameter(
    "fingerprint", str, OpenApiParameter.PATH, description="16 hex digits, from listErrorGroups"
)


class _GroupActionView(ApiView):
    action = ""

    def group(self, spaceId: str, fingerprint: str):
        self.check_space(spaceId)
        if not rollups.valid_fingerprint(fingerprint):
            raise NotFound("not_found", "Error group not found")
        jobs = rollups.group_jobs(self.key.space, fingerprint)
        if not jobs.exists():
            raise NotFound("not_found", "Error group not found")
        return jobs

    def body_dict(self, request: Request) -> dict:
        data = request.data
        if data in (None, "", b""):
            return {}
        if not isinstance(data, dict):
            raise Invalid("validation_error", "Expected a JSON object", details={})
        return data


class ErrorGroupRetryView(_GroupActionView):
    scopes_by_method = {"POST": (scopes.RETRY,)}

    @extend_schema(
        operation_id="retryErrorGroup",
        summary="Re-queue every dead or killed job of the group, attempts reset",
        parameters=[FINGERPRINT_PARAM],
        request=None,
        responses={200: GroupActionSerializer, **_errors(400, 401, 403, 404, 413, 415, 429)},
        tags=["jobs"],
    )
    def post(self, request: Request, spaceId: str, fingerprint: str) -> Response:
        self.body_dict(request)  # the body first: an over-size one is a 413 whatever the group
        jobs = self.group(spaceId, fingerprint)
        done = services.bulk_retry(jobs)
        return Response({"fingerprint": fingerprint, "action": "retry", "count": done})


class ErrorGroupKillView(_GroupActionView):
    scopes_by_method = {"POST": (scopes.KILL,)}

    @extend_schema(
        operation_id="killErrorGroup",
        summary="Kill every job of the group that is not finished (waiting for a retry, say)",
        parameters=[FINGERPRINT_PARAM],
        request=GroupKillBodySerializer,
        responses={200: GroupActionSerializer, **_errors(400, 401, 403, 404, 413, 415, 429)},
        tags=["jobs"],
    )
    def post(self, request: Request, spaceId: str, fingerprint: str) -> Response:
        data = self.validate(GroupKillBodySerializer, self.body_dict(request))
        jobs = self.group(spaceId, fingerprint)
        reason = data.get("reason") or f"error group {fingerprint} killed through the API"
        done = services.bulk_kill(jobs, reason=reason)
        return Response({"fingerprint": fingerprint, "action": "kill", "count": done})
