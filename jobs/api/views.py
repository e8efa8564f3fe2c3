"""The worker and producer REST API (docs/api.md). Every state change goes to jobs.services."""

from __future__ import annotations

import math
import time
from typing import Any

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import queries, services, wakeup
from jobs.models import Job
from jobs.services import JobError
from lib.errors import Forbidden, Invalid, NotFound, Throttled, TooLarge, Unsupported
from lib.params import int_param
from spaces import scopes
from spaces.models import ApiKey

from . import listing, throttling, workerid
from . import serializers as s
from .listing import text_param as _text_param
from .parsers import CappedJSONParser, JSONLinesParser, NDJSONNewTypeParser, NDJSONParser

# Events returned with a job (the most recent ones; the stream and admin have all of them).
MAX_DETAIL_EVENTS = 1000


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    described = {
        400: "Validation failed or malformed JSON",
        401: "Invalid or missing API key",
        403: "Missing required scope: <scope>",
        404: "Unknown job or space, or one of another space",
        409: "Transition not allowed (invalid_transition, job_killed, stale_claim, space_paused)",
        413: "Request body too large",
        415: "Unsupported content type",
        429: "Rate limited (see Retry-After)",
    }
    return {code: OpenApiResponse(s.ErrorSerializer, description=described[code]) for code in codes}


COMMON = (400, 401, 403, 404, 413, 415, 429)
CLAIM_HEADER = OpenApiParameter(
    "X-Claim-Id",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The claimId the job was handed out with; a stale one gets 409 stale_claim.",
)
WORKER_HEADER = OpenApiParameter(
    "X-Worker-Id",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Names the worker (1-200 printable characters, e.g. hostname:pid) in the workers view "
        "and on the jobs it takes; without it the worker is named by its key. A malformed one "
        "is 400 on any call."
    ),
)


class ApiView(APIView):
    """Key auth, the per-key rate limit, scope checks and capped JSON bodies."""

    parser_classes = [CappedJSONParser]
    # Per HTTP method: any one of these scopes is enough.
    scopes_by_method: dict[str, tuple[str, ...]] = {}

    @property
    def key(self) -> ApiKey:
        return self.request.auth

    def check_permissions(self, request: Request) -> None:
        if not isinstance(request.auth, ApiKey):
            raise NotAuthenticated()
        wait = throttling.check(request.auth.pk)
        if wait is not None:
            raise Throttled("rate_limited", "Rate limit exceeded", wait=max(1, math.ceil(wait)))
        needed = self.scopes_by_method.get(request.method, ())
        if needed and not any(request.auth.has_scope(scope) for scope in needed):
            raise Forbidden("missing_scope", f"Missing required scope: {needed[0]}")
        workerid.worker_header(request)  # a malformed X-Worker-Id is a 400 on every call

    def check_throttles(self, request: Request) -> None:
        pass  # done in check_permissions, after authentication

    # -- helpers --

    def body(self, request: Request) -> dict:
        data = request.data
        if not isinstance(data, dict):
            raise Invalid("validation_error", "Expected a JSON object", details={})
        return data

    def validate(self, serializer_class, data) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def check_space(self, space_id: str) -> None:
        # Another space's id answers like an unknown one: no existence leak.
        if space_id != self.key.space.public_id:
            raise NotFound("not_found", "Space not found")

    def get_job(self, job_id: str) -> Job:
        if not _valid_id(job_id):
            raise services.not_found()
        # The space is the key's (already loaded): no join, and its secrets are not decrypted.
        job = Job.objects.filter(pk=job_id, space=self.key.space).first()
        if job is None:
            raise services.not_found()
        job.space = self.key.space
        return job

    def job_ref(self, job_id: str) -> Job:
        """The job a worker call acts on, not read here: the lifecycle's row lock is the read.

        An unknown job, or one of another space, is answered 404 by the lifecycle then.
        """
        if not _valid_id(job_id):
            raise services.not_found()
        job = Job(id=job_id, space_id=self.key.space.pk)
        job.space = self.key.space
        self._unread_job = job
        return job

    def handle_exception(self, exc: Exception) -> Response:
        # A bad body for a job that does not exist is answered 404, as when the job was read
        # first: the lookup is paid on this error path only.
        ref = getattr(self, "_unread_job", None)
        bad_body = isinstance(exc, Invalid | TooLarge | Unsupported) or (
            isinstance(exc, APIException) and exc.status_code in (400, 413, 415)
        )
        if (
            ref is not None
            and bad_body
            and not Job.objects.filter(pk=ref.pk, space_id=ref.space_id).exists()
        ):
            exc = services.not_found()
        return super().handle_exception(exc)

    def claim_id(self, request: Request, body: dict | None = None) -> str | None:
        value = request.headers.get("X-Claim-Id")
        if value is None and body is not None and isinstance(body.get("claimId"), str):
            value = body["claimId"]
        return value or None


# --- producer -------------------------------------------------------------------------------


class SpaceJobsView(ApiView):
    scopes_by_method = {"POST": (scopes.CREATE,), "GET": (scopes.READ,)}

    @extend_schema(
        operation_id="createJobs",
        summary="Create a job (object body) or up to 1000 jobs (array body)",
        request={"application/json": s.JobCreateSerializer},
        responses={
            201: s.JobCreatedSerializer,
            200: OpenApiResponse(s.JobCreatedSerializer, description="Idempotent repeat"),
            **_errors(*COMMON),
        },
        tags=["jobs"],
    )
    def post(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        space = self.key.space
        data = request.data
        if isinstance(data, list):
            if not data:
                raise Invalid(
                    "validation_error",
                    "Validation failed",
                    details={"non_field_errors": ["Empty list"]},
                )
            if len(data) > services.MAX_BULK_CREATE:
                raise Invalid(
                    "validation_error",
                    "Validation failed",
                    details={"non_field_errors": [f"At most {services.MAX_BULK_CREATE} jobs"]},
                )
            items, errors = [], {}
            for index, item in enumerate(data):
                serializer = s.JobCreateSerializer(data=item)
                if not isinstance(item, dict):
                    errors[str(index)] = {"non_field_errors": ["Expected a JSON object"]}
                elif serializer.is_valid():
                    items.append(dict(serializer.validated_data))
                else:
                    errors[str(index)] = serializer.errors
            if errors:  # all or nothing
                raise Invalid("validation_error", "Validation failed", details=errors)
            results = services.create_jobs(space, items)
            for job, _ in results:
                job.space = space
            body = [s.created_json(job) for job, _ in results]
            created = any(was_created for _, was_created in results)
            return Response(body, status=201 if created else 200)
        if not isinstance(data, dict):
            raise Invalid("validation_error", "Expected a JSON object or array", details={})
        validated = dict(self.validate(s.JobCreateSerializer, data))
        job, created = services.create_job(space, validated)
        job.space = space
        return Response(s.created_json(job), status=201 if created else 200)

    # The list's query string, read by DRF's filter and pagination shapes (listing.py); the
    # OpenAPI document takes its parameters from the same classes.
    filter_backends = [listing.JobFilter]
    pagination_class = listing.JobPagination

    @extend_schema(
        operation_id="listJobs",
        summary="List jobs, newest first: a JSON array, the next page in the Link header",
        parameters=[
            OpenApiParameter(
                "Link",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[200],
                description='`<URL of the next page>; rel="next"`; absent on the last page',
            )
        ],
        # A list serializer, not an OpenApiResponse: drf-spectacular then applies the filter
        # and pagination classes (their parameters, and the page's schema).
        responses={200: s.JobSerializer(many=True), **_errors(400, 401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        listing.check_params(
            request.query_params, (*listing.JobFilter.params, *listing.JobPagination.params)
        )
        query = listing.JobQuery(self.key.space)
        for backend in self.filter_backends:
            query = backend().filter_queryset(request, query, self)
        paginator = self.pagination_class()
        jobs = paginator.paginate_queryset(query, request, self)
        for job in jobs:
            job.space = self.key.space
        return paginator.get_paginated_response([s.job_json(job) for job in jobs])


def _valid_id(value: str) -> bool:
    # Job ids are ULIDs: anything else is unknown without asking the database.
    return len(value) == 26 and value.isascii() and value.isalnum()


# --- workers --------------------------------------------------------------------------------


def _release_connection() -> None:
    # A waiting long poll holds no database connection; the next query reconnects. Inside a
    # transaction (tests) the connection must stay.
    if not connection.in_atomic_block:
        connection.close()


class PollView(ApiView):
    scopes_by_method = {"POST": (scopes.POLL,)}

    @extend_schema(
        operation_id="pollJobs",
        summary="Claim up to `count` pending jobs; `waitSeconds` long-polls",
        request=s.PollSerializer,
        parameters=[WORKER_HEADER],
        responses={200: s.PollResponseSerializer, **_errors(*COMMON)},
        tags=["workers"],
    )
    def post(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        params = self.validate(s.PollSerializer, self.body(request))
        space = self.key.space
        worker, sighting = workerid.polling_worker(request, self.key)
        names = params.get("filter_names")
        wait = float(params.get("waitSeconds") or 0)
        deadline = time.monotonic() + wait
        # Other processes' jobs are noticed by re-checking; with Redis they also wake us.
        recheck = 1.0 if wakeup.settings.REDIS_URL else 0.25
        while True:
            seen = wakeup.generation(space.pk)
            jobs = services.poll_jobs(
                space,
                count=params["count"],
                names=names,
                ack=params["ack"],
                worker_id=worker,
                sighting=sighting,
            )
            sighting = None  # noted once per call
            left = deadline - time.monotonic()
            if jobs or left <= 0:
                break
            _release_connection()
            wakeup.wait(space.pk, seen, min(recheck, left))
        return Response({"jobs": [s.descriptor_json(job) for job in jobs]})


class ClaimView(ApiView):
    scopes_by_method = {"POST": (scopes.POLL,)}

    @extend_schema(
        operation_id="claimJob",
        summary="Claim one pending job",
        request=None,
        parameters=[WORKER_HEADER],
        responses={200: s.ClaimResponseSerializer, **_errors(*COMMON, 409)},
        tags=["workers"],
    )
    def post(self, request: Request, jobId: str) -> Response:
        if not _valid_id(jobId):
            raise services.not_found()
        _maybe_body(request)  # a body is not needed, but an over-size one still gets 413
        worker, sighting = workerid.polling_worker(request, self.key)
        job = services.claim_job(self.key.space, jobId, worker_id=worker, sighting=sighting)
        return Response({"job": s.descriptor_json(job)})


def _maybe_body(request: Request) -> dict:
    data = request.data
    return data if isinstance(data, dict) else {}


# A POST that acts on one job, the shape every worker call, kill and retry share. The job is
# not read here (the lifecycle's row lock is the read: `job_ref`). The body is validated with
# `body_serializer`, or passed on as it is when that is None; with `body_required` False no body
# is needed, though an over-size or malformed one is still refused. `act` calls the lifecycle;
# the answer is the job's id, status and attempt number. (A comment, not a docstring: the
# OpenAPI document describes every operation with ApiView's.)
class JobCallView(ApiView):
    body_serializer: type | None = None
    body_required = True

    def post(self, request: Request, jobId: str) -> Response:
        job = self.job_ref(jobId)
        if self.body_required:
            body = self.body(request)
            data = self.validate(self.body_serializer, body) if self.body_serializer else body
        else:
            body = data = _maybe_body(request)
        self.act(job, data, self.claim_id(request, body))
        return Response(s.status_json(job))

    def act(self, job: Job, data: dict, claim_id: str | None) -> None:
        raise NotImplementedError


def _job_call(operation_id: str, summary: str, request, *, tags="workers", errors=None, claim=True):
    """The OpenAPI entry of a JobCallView's POST."""
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            summary=summary,
            request=request,
            parameters=[CLAIM_HEADER] if claim else None,
            responses={200: s.StatusSerializer, **_errors(*(errors or (*COMMON, 409)))},
            tags=[tags],
        )
    )


@_job_call(
    "ackJob",
    "Acknowledge a delivered job: it starts running",
    None,
    errors=(400, 401, 403, 404, 409, 413, 415, 429),
)
class AckView(JobCallView):
    scopes_by_method = {"POST": (scopes.ACK,)}
    body_required = False

    def act(self, job, data, claim_id):
        services.ack_job(job, claim_id=claim_id)


@_job_call(
    "reportProgress",
    "Report progress (running jobs); resets the execution timeout",
    s.ProgressBodySerializer,
)
class ProgressView(JobCallView):
    scopes_by_method = {
        "POST": (scopes.PROGRESS,),
        "GET": (scopes.READ_PROGRESS, scopes.READ),
    }
    body_serializer = s.ProgressBodySerializer

    def act(self, job, data, claim_id):
        services.report_progress(
            job, data["percent"], data["message"], data.get("subProgress"), claim_id=claim_id
        )

    @extend_schema(
        operation_id="getProgress",
        summary="The latest progress of a job",
        responses={200: s.ProgressResponseSerializer, **_errors(401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, jobId: str) -> Response:
        job = self.get_job(jobId)
        return Response({"jobId": job.id, "status": job.status, "progress": job.progress})


@_job_call(
    "checkpointJob",
    "Store a checkpoint (any JSON object); kept across retries",
    {"application/json": {"type": "object", "additionalProperties": True}},
)
class CheckpointView(JobCallView):
    scopes_by_method = {"POST": (scopes.EVENT,)}

    def act(self, job, data, claim_id):
        if s.payload_size(data) > s.MAX_PAYLOAD_BYTES:
            # Like payload, result and event data: a field rule (400), not the body cap (413).
            raise Invalid(
                "validation_error",
                "Validation failed",
                details={"non_field_errors": ["Checkpoint exceeds 1 MiB when serialized"]},
            )
        services.checkpoint_job(job, data, claim_id=claim_id)


@_job_call("sendEvent", "Record a custom event", s.EventBodySerializer)
class EventView(JobCallView):
    scopes_by_method = {"POST": (scopes.EVENT,)}
    body_serializer = s.EventBodySerializer

    def act(self, job, data, claim_id):
        services.record_custom_event(job, data["type"], data.get("data"), claim_id=claim_id)


@_job_call(
    "keepaliveJob",
    "Extend the job's deadline (extendSeconds, default timeoutSeconds)",
    s.KeepaliveSerializer,
)
class KeepaliveView(JobCallView):
    scopes_by_method = {"POST": (scopes.KEEPALIVE,)}
    body_serializer = s.KeepaliveSerializer

    def act(self, job, data, claim_id):
        services.keepalive_job(job, data.get("extendSeconds"), claim_id=claim_id)


@_job_call("completeJob", "Complete a running (or delivered) job", s.CompleteSerializer)
class CompleteView(JobCallView):
    scopes_by_method = {"POST": (scopes.COMPLETE,)}
    body_serializer = s.CompleteSerializer

    def act(self, job, data, claim_id):
        services.complete_job(job, data.get("result"), claim_id=claim_id)


@_job_call(
    "failJob",
    "Fail the attempt: retried after the backoff while attempts are left, else dead",
    s.FailSerializer,
)
class FailView(JobCallView):
    scopes_by_method = {"POST": (scopes.FAIL,)}
    body_serializer = s.FailSerializer

    def act(self, job, data, claim_id):
        services.fail_job(job, data["error"], retry=data["retry"], claim_id=claim_id)


@_job_call("killJob", "Kill a job that is not finished", s.KillSerializer, tags="jobs", claim=False)
class KillView(JobCallView):
    scopes_by_method = {"POST": (scopes.KILL,)}
    body_serializer = s.KillSerializer

    def act(self, job, data, claim_id):
        services.kill_job(job, data.get("reason") or None)


@_job_call(
    "retryJob",
    "Re-queue a dead or killed job with its attempts reset",
    None,
    tags="jobs",
    errors=(*COMMON, 409),
    claim=False,
)
class RetryView(JobCallView):
    scopes_by_method = {"POST": (scopes.RETRY,)}
    body_required = False

    def act(self, job, data, claim_id):
        services.retry_job(job)


class JobDetailView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="getJob",
        summary="A job with its event history",
        responses={200: s.JobDetailSerializer, **_errors(401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, jobId: str) -> Response:
        job = self.get_job(jobId)
        latest, _ = queries.latest_events(job, MAX_DETAIL_EVENTS)
        body = s.job_json(job)
        body["events"] = [queries.event_json(e) for e in latest]
        return Response(body)


class LogsView(ApiView):
    scopes_by_method = {"POST": (scopes.EVENT,), "GET": (scopes.READ,)}
    parser_classes = [CappedJSONParser, NDJSONParser, NDJSONNewTypeParser, JSONLinesParser]

    @extend_schema(
        operation_id="appendLogs",
        summary="Append log lines: NDJSON (optionally gzip) or a JSON array",
        request={
            "application/json": {"type": "array", "items": {"type": "object"}},
            "application/x-ndjson": {"type": "string"},
            "application/ndjson": {"type": "string"},
            "application/jsonl": {"type": "string"},
        },
        responses={202: s.AcceptedSerializer, **_errors(*COMMON, 409)},
        tags=["workers"],
    )
    def post(self, request: Request, jobId: str) -> Response:
        job = self.job_ref(jobId)
        data = request.data
        if isinstance(data, dict) and isinstance(data.get("logs"), list):
            data = data["logs"]  # {"logs": [...]} is accepted too
        elif isinstance(data, dict) and data:
            data = [data]  # a single line object
        lines, errors = s.parse_log_lines(data)
        if errors:
            raise Invalid("validation_error", "Validation failed", details=errors)
        accepted = services.append_logs(job, lines)
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="readLogs",
        summary="Read log lines by sequence cursor",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="lines with seq > after"),
            OpenApiParameter(
                "before",
                OpenApiTypes.INT,
                description="lines with seq < before (newest first window)",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-1000, default 100"),
            OpenApiParameter(
                "level", OpenApiTypes.STR, description="a level or comma-separated levels"
            ),
            OpenApiParameter("q", OpenApiTypes.STR, description="text search in messages"),
        ],
        responses={200: s.LogListSerializer, **_errors(400, 401, 403, 404, 429)},
        tags=["jobs"],
    )
    def get(self, request: Request, jobId: str) -> Response:
        job = self.get_job(jobId)
        params = request.query_params
        errors: dict[str, list[str]] = {}
        limit = int_param(params, "limit", default=100, low=1, high=1000, errors=errors)
        after = int_param(params, "after", default=0, high=2**31 - 1, errors=errors)
        before = int_param(params, "before", default=0, high=2**31 - 1, errors=errors)
        levels = None
        level_param = _text_param(params, "level", errors)
        if level_param:
            levels = [v.strip().lower() for v in level_param.split(",") if v.strip()]
            levels = [s.LEVEL_ALIASES.get(v, v) for v in levels]
            bad = [v for v in levels if v not in services.LOG_LEVELS]
            if bad:
                errors["level"] = [f"Unknown level: {', '.join(bad)}"]
        q = _text_param(params, "q", errors)
        if errors:
            raise Invalid("validation_error", "Validation failed", details=errors)
        # From AFTER onwards; with BEFORE, the window just below it (paging back), oldest first.
        rows, more = queries.log_page(
            job, limit=limit, after=after, before=before or None, levels=levels, text=q
        )
        return Response({"logs": [s.log_json(line) for line in rows], "hasMore": more})


# --- batch complete / fail (beyond) ---------------------------------------------------------


class _BatchView(ApiView):
    action_name = ""

    def handle_item(self, job: Job, item: dict) -> None:
        raise NotImplementedError

    def handle_all(self, items: list[dict]) -> list[Job | JobError] | None:
        """Every valid item at once, answered in order; None falls back to handle_item."""
        return None

    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, dict) and isinstance(data.get("jobs"), list):
            data = data["jobs"]
        if not isinstance(data, list) or not data or len(data) > 1000:
            raise Invalid(
                "validation_error",
                "Expected a list of 1 to 1000 items",
                details={"non_field_errors": ["Expected a list of 1 to 1000 items"]},
            )
        results: list[dict[str, Any] | None] = []
        valid: list[tuple[int, dict]] = []
        for item in data:
            serializer = s.BatchItemSerializer(data=item)
            item_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item, dict) or not serializer.is_valid():
                results.append(
                    {
                        "id": str(item_id or ""),
                        "ok": False,
                        "code": "validation_error",
                        "error": "Validation failed",
                    }
                )
                continue
            valid.append((len(results), serializer.validated_data))
            results.append(None)
        answers = self.handle_all([clean for _, clean in valid]) if valid else []
        if answers is not None:
            for (index, clean), answer in zip(valid, answers, strict=True):
                if isinstance(answer, JobError):
                    results[index] = {
                        "id": clean["id"],
                        "ok": False,
                        "code": answer.code,
                        "error": answer.message,
                    }
                else:
                    results[index] = {"id": answer.id, "ok": True, "status": answer.status}
            return Response({"results": results})
        for index, clean in valid:
            results[index] = self._one(clean)
        return Response({"results": results})

    def _one(self, clean: dict) -> dict[str, Any]:
        job = Job.objects.filter(pk=clean["id"], space=self.key.space).first()
        try:
            if job is None:
                raise services.not_found()
            self.handle_item(job, clean)
            return {"id": job.id, "ok": True, "status": job.status}
        except JobError as exc:
            return {"id": clean["id"], "ok": False, "code": exc.code, "error": exc.message}


class BatchCompleteView(_BatchView):
    scopes_by_method = {"POST": (scopes.COMPLETE,)}

    def handle_item(self, job: Job, item: dict) -> None:
        services.complete_job(job, item.get("result"), claim_id=item.get("claimId"))

    def handle_all(self, items: list[dict]) -> list[Job | JobError]:
        # One transaction for the whole batch (services.complete_jobs keeps each item's rules).
        return services.complete_jobs(
            self.key.space,
            [(item["id"], item.get("claimId"), item.get("result")) for item in items],
        )

    @extend_schema(
        operation_id="completeJobsBatch",
        summary="Complete many jobs: a list of {id, claimId?, result?}; answered per item",
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={200: s.BatchResponseSerializer, **_errors(400, 401, 403, 413, 415, 429)},
        tags=["workers"],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class BatchFailView(_BatchView):
    scopes_by_method = {"POST": (scopes.FAIL,)}

    def handle_item(self, job: Job, item: dict) -> None:
        if not item.get("error"):
            raise Invalid("validation_error", "error is required")
        services.fail_job(
            job, item["error"], retry=item.get("retry", True), claim_id=item.get("claimId")
        )

    @extend_schema(
        operation_id="failJobsBatch",
        summary="Fail many jobs: a list of {id, claimId?, error, retry?}; answered per item",
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={200: s.BatchResponseSerializer, **_errors(400, 401, 403, 413, 415, 429)},
        tags=["workers"],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)
