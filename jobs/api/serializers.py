"""API shapes: validation of what comes in (camelCase), and the JSON of jobs going out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import groups, workflows
from jobs.models import Job, JobLog
from jobs.queries import attempt, iso
from jobs.services import LOG_LEVELS, MAX_POLL_COUNT, payload_size
from lib.http_headers import validate_headers
from lib.outbound import validate_outbound_url

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_ERROR_CHARS = 10_000

# Timestamps a client sends are kept only in this range (docs/api.md). The databases store more,
# but an instant in year 1 or 9999 with an offset cannot be read back in every time zone, and
# no job runs or logs before 1970.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
RANGE_ERROR = "must be from 1970-01-01T00:00:00Z up to (not including) 9999-01-01T00:00:00Z"


def realtime_url(job_id: str) -> str:
    base = settings.PUBLIC_URL
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}/api/v1/realtime/{job_id}"


@extend_schema_field(OpenApiTypes.ANY)
class AnyJSONField(serializers.JSONField):
    pass


def in_range(value: datetime) -> bool:
    try:
        return EARLIEST <= value < LATEST
    except OverflowError:  # an offset that moves the instant past year 1 or 9999
        return False


class BoundedDateTimeField(serializers.DateTimeField):
    """A timestamp in the accepted range (EARLIEST up to LATEST)."""

    # DRF's own refusal of an offset that moves the instant past year 1 or 9999.
    default_error_messages = {"overflow": f"Timestamps {RANGE_ERROR}"}

    def to_internal_value(self, value):
        result = super().to_internal_value(value)
        if not in_range(result):
            self.fail("overflow")
        return result


class StrictIntegerField(serializers.IntegerField):
    """An integer that must be a JSON number, not a string or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictNumberField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """A string that must be a JSON string (DRF's CharField would accept 5 as "5")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BackoffSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["exponential", "fixed"], default="exponential")
    delaySeconds = StrictNumberField(min_value=0, max_value=86400, default=1)  # noqa: N815
    maxDelaySeconds = StrictNumberField(min_value=0, max_value=86400, default=3600)  # noqa: N815
    jitter = StrictBooleanField(default=True)


class HeadersField(serializers.Field):
    """callbackHeaders: header names to string values, by the rules every outbound call uses."""

    def to_internal_value(self, data):
        problems = validate_headers(data)
        if problems:
            raise serializers.ValidationError(problems)
        return dict(data)

    def to_representation(self, value):
        return value


HeadersField = extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})(
    HeadersField
)


class DependsOnField(serializers.Field):
    """dependsOn: job ids of the space, or (in an array create) positions of earlier items."""

    def to_internal_value(self, data):
        if data is None:
            return []
        if not isinstance(data, list):
            raise serializers.ValidationError("A list of job ids (or positions in an array)")
        if len(data) > workflows.MAX_PARENTS:
            raise serializers.ValidationError(f"At most {workflows.MAX_PARENTS} parents")
        refs: list[str | int] = []
        for ref in data:
            if isinstance(ref, int) and not isinstance(ref, bool):
                refs.append(ref)
            elif isinstance(ref, str) and len(ref) == 26 and ref.isascii() and ref.isalnum():
                refs.append(ref.upper())
            else:
                raise serializers.ValidationError(
                    "Each item is a job id or the position of an earlier item in the array"
                )
        return list(dict.fromkeys(refs))

    def to_representation(self, value):
        return value


DependsOnField = extend_schema_field(
    {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}
)(DependsOnField)


class CompletionTemplateField(serializers.Field):
    """A group's onComplete: a job create body, validated exactly like one (JobCreateSerializer),
    less what a completion job cannot take (jobs/groups.py)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("A job create body (a JSON object)")
        if data.get("group") is not None:
            # Refused before validating it: a group's template never nests another group.
            raise serializers.ValidationError({"group": ["Not allowed on a completion job"]})
        serializer = JobCreateSerializer(data=data)
        if not serializer.is_valid():
            raise serializers.ValidationError(serializer.errors)
        template = dict(serializer.validated_data)
        problems = groups.template_problems(template)
        if problems:
            raise serializers.ValidationError(problems)
        if template.get("backoff") is not None:
            template["backoff"] = dict(template["backoff"])
        # Stored as JSON (JobGroup.on_complete): only what the create gave, no empty defaults.
        return {k: v for k, v in template.items() if v is not None or k == "payload"}

    def to_representation(self, value):
        return value


class GroupSpecSerializer(serializers.Serializer):
    """`group` on a create body: the jobs of one request that carry it are one group's members,
    and `onComplete` is created once when they have all finished (docs/workflows.md)."""

    name = StrictCharField(min_length=1, max_length=200)
    onComplete = CompletionTemplateField(source="on_complete")  # noqa: N815


class JobCreateSerializer(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=200)
    payload = AnyJSONField(required=False, allow_null=True, default=None)
    priority = StrictIntegerField(
        required=False, default=0, min_value=-(2**31), max_value=2**31 - 1
    )
    maxRetries = StrictIntegerField(  # noqa: N815
        source="max_retries", required=False, default=3, min_value=0, max_value=25
    )
    timeoutSeconds = StrictIntegerField(  # noqa: N815
        source="timeout_seconds", required=False, default=300, min_value=1, max_value=86400
    )
    scheduledFor = BoundedDateTimeField(  # noqa: N815
        source="scheduled_for", required=False, allow_null=True, default=None
    )
    backoff = BackoffSerializer(required=False, allow_null=True, default=None)
    idempotencyKey = StrictCharField(  # noqa: N815
        source="idempotency_key",
        required=False,
        allow_null=True,
        default=None,
        min_length=1,
        max_length=200,
    )
    callbackUrl = serializers.URLField(  # noqa: N815
        source="callback_url", required=False, allow_null=True, allow_blank=True, max_length=2000
    )
    callbackHeaders = HeadersField(  # noqa: N815
        source="callback_headers", required=False, allow_null=True
    )
    # Per-key flow control (jobs/flow.py): the name's per-key limits hold for each value.
    concurrencyKey = StrictCharField(  # noqa: N815
        source="concurrency_key",
        required=False,
        allow_null=True,
        default=None,
        min_length=1,
        max_length=200,
        trim_whitespace=False,
    )
    # Workflows (docs/workflows.md): the jobs this one waits for, and what a failed one does.
    dependsOn = DependsOnField(source="depends_on", required=False, allow_null=True)  # noqa: N815
    onParentFailure = serializers.ChoiceField(  # noqa: N815
        source="on_parent_failure", choices=workflows.POLICIES, required=False
    )
    # Groups (docs/workflows.md): every job of a request carrying it is a member.
    group = GroupSpecSerializer(required=False, allow_null=True)

    def validate(self, attrs):
        if attrs.get("depends_on") and attrs.get("scheduled_for") is not None:
            raise serializers.ValidationError(
                {"scheduledFor": ["A job with dependsOn starts when its parents are done"]}
            )
        return attrs

    def validate_concurrencyKey(self, value):  # noqa: N802
        if value is not None and not value.isprintable():
            raise serializers.ValidationError("Printable characters only (no control characters)")
        return value

    def validate_payload(self, value):
        if value is not None and payload_size(value) > MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError("Payload exceeds 1 MiB when serialized")
        return value

    def validate_scheduledFor(self, value):  # noqa: N802
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future")
        return value

    def validate_callbackUrl(self, value):  # noqa: N802
        if value:
            # Refused at input when the target is a literal internal address; names are
            # checked again on the address actually connected to, at delivery.
            problems = validate_outbound_url(value, allow_private=settings.OUTBOUND_ALLOW_PRIVATE)
            if problems:
                raise serializers.ValidationError(problems)
        return value


# The onComplete of a group is a job create body: its schema is this one's (a recursion the
# OpenAPI document names by reference).
extend_schema_field(JobCreateSerializer)(CompletionTemplateField)


class JobCreatedSerializer(serializers.Serializer):
    id = serializers.CharField()
    spaceId = serializers.CharField()  # noqa: N815
    status = serializers.CharField()
    realtimeUrl = serializers.CharField()  # noqa: N815
    groupId = serializers.CharField(required=False)  # noqa: N815


def created_json(job: Job) -> dict:
    body = {
        "id": job.id,
        "spaceId": job.space.public_id,
        "status": job.status,
        "realtimeUrl": realtime_url(job.id),
    }
    if job.group_id is not None:
        body["groupId"] = job.group_id  # a member of a group (jobs/groups.py)
    return body


class NamesField(serializers.Field):
    """A job name or a list of names."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(n, str) and n for n in data):
            raise serializers.ValidationError("A job name or a list of job names")
        if len(data) > 100:
            raise serializers.ValidationError("At most 100 names")
        return data

    def to_representation(self, value):
        return value


NamesField = extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
)(NamesField)


POLL_FILTER_PRECEDENCE = ("types", "type", "names", "name")


class PollSerializer(serializers.Serializer):
    count = StrictIntegerField(required=False, default=1, min_value=1, max_value=MAX_POLL_COUNT)
    type = NamesField(required=False)
    types = NamesField(required=False)
    name = NamesField(required=False)
    names = NamesField(required=False)
    waitSeconds = StrictNumberField(  # noqa: N815
        required=False, default=0, min_value=0, max_value=20
    )
    ack = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        # When several are sent, the first of types, type, names, name wins (docs/api.md, poll).
        for field in POLL_FILTER_PRECEDENCE:
            if attrs.get(field):
                attrs["filter_names"] = attrs[field]
                break
        return attrs


class ParentSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    result = AnyJSONField(allow_null=True)
    resultTruncated = serializers.BooleanField(required=False)  # noqa: N815
    error = serializers.CharField(required=False, allow_null=True)


class DescriptorSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    payload = AnyJSONField(allow_null=True)
    timeoutSeconds = serializers.IntegerField()  # noqa: N815
    maxRetries = serializers.IntegerField()  # noqa: N815
    attemptNumber = serializers.IntegerField()  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815
    claimId = serializers.CharField()  # noqa: N815
    status = serializers.CharField()
    priority = serializers.IntegerField()
    parents = ParentSerializer(many=True)


def descriptor_json(job: Job) -> dict:
    return {
        "id": job.id,
        "name": job.name,
        "payload": job.payload,
        "timeoutSeconds": job.timeout_seconds,
        "maxRetries": job.max_retries,
        "attemptNumber": attempt(job.attempt_number),
        "createdAt": iso(job.created_at),
        "claimId": job.claim_id,
        "status": job.status,
        "priority": job.priority,
        # The parents' outcomes (jobs/workflows.py attach_parents); [] for a plain job.
        "parents": getattr(job, "workflow_parents", None) or [],
    }


class PollResponseSerializer(serializers.Serializer):
    jobs = DescriptorSerializer(many=True)


class ClaimResponseSerializer(serializers.Serializer):
    job = DescriptorSerializer()


class JobSerializer(serializers.Serializer):
    id = serializers.CharField()
    spaceId = serializers.CharField()  # noqa: N815
    name = serializers.CharField()
    payload = AnyJSONField(allow_null=True)
    status = serializers.ChoiceField(choices=Job.Status.values)
    priority = serializers.IntegerField()
    maxRetries = serializers.IntegerField()  # noqa: N815
    attemptNumber = serializers.IntegerField()  # noqa: N815
    timeoutSeconds = serializers.IntegerField()  # noqa: N815
    scheduledFor = serializers.DateTimeField(allow_null=True)  # noqa: N815
    backoff = AnyJSONField(allow_null=True)
    idempotencyKey = serializers.CharField(allow_null=True)  # noqa: N815
    concurrencyKey = serializers.CharField(allow_null=True)  # noqa: N815
    callbackUrl = serializers.CharField(allow_null=True)  # noqa: N815
    callbackHeaders = serializers.DictField(  # noqa: N815
        child=serializers.CharField(), allow_null=True
    )
    result = AnyJSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    progress = AnyJSONField(allow_null=True)
    deliveredAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    startedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    completedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815
    updatedAt = serializers.DateTimeField()  # noqa: N815
    realtimeUrl = serializers.CharField()  # noqa: N815
    parentCount = serializers.IntegerField()  # noqa: N815
    waitingParents = serializers.IntegerField()  # noqa: N815
    onParentFailure = serializers.CharField()  # noqa: N815
    groupId = serializers.CharField(allow_null=True)  # noqa: N815


def job_json(job: Job) -> dict:
    return {
        "id": job.id,
        "spaceId": job.space.public_id,
        "name": job.name,
        "payload": job.payload,
        "status": job.status,
        "priority": job.priority,
        "maxRetries": job.max_retries,
        "attemptNumber": attempt(job.attempt_number),
        "timeoutSeconds": job.timeout_seconds,
        "scheduledFor": iso(job.scheduled_for),
        "backoff": job.backoff,
        "idempotencyKey": job.idempotency_key,
        "concurrencyKey": job.concurrency_key,
        "callbackUrl": job.callback_url or None,
        "callbackHeaders": job.callback_headers or None,  # none sent: null
        "result": job.result,
        "error": job.last_error or None,
        "progress": job.progress,
        "deliveredAt": iso(job.delivered_at),
        "startedAt": iso(job.started_at),
        "completedAt": iso(job.completed_at),
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "realtimeUrl": realtime_url(job.id),
        # Workflows (docs/workflows.md): its parents, how many are not finished yet, and what a
        # failed one does to it. Columns of the row: no query.
        "parentCount": job.parent_count,
        "waitingParents": job.waiting_parents,
        "onParentFailure": job.on_parent_failure,
        # Groups: the group it is a member of (GET /spaces/{id}/groups/{groupId}), or null.
        "groupId": job.group_id,
    }


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    status = serializers.CharField()
    previousStatus = serializers.CharField(allow_null=True)  # noqa: N815
    data = AnyJSONField(allow_null=True)
    attemptNumber = serializers.IntegerField()  # noqa: N815
    seq = serializers.IntegerField(allow_null=True)
    createdAt = serializers.DateTimeField()  # noqa: N815


class JobDetailSerializer(JobSerializer):
    events = EventSerializer(many=True)


class ProgressBodySerializer(serializers.Serializer):
    percent = StrictNumberField(min_value=0, max_value=100)
    message = StrictCharField(min_length=1, max_length=2000)
    subProgress = serializers.DictField(  # noqa: N815
        child=serializers.DictField(), required=False, allow_null=True
    )

    def validate_subProgress(self, value):  # noqa: N802
        if value is None:
            return value
        if len(value) > 100:
            raise serializers.ValidationError("At most 100 stages")
        clean = {}
        for stage, entry in value.items():
            percent = entry.get("percent")
            if isinstance(percent, bool) or not isinstance(percent, int | float):
                raise serializers.ValidationError(f"{stage}: percent must be a number")
            if not 0 <= percent <= 100:
                raise serializers.ValidationError(f"{stage}: percent must be between 0 and 100")
            item: dict[str, Any] = {"percent": percent}
            if entry.get("message") is not None:
                if not isinstance(entry["message"], str):
                    raise serializers.ValidationError(f"{stage}: message must be a string")
                item["message"] = entry["message"]
            clean[stage] = item
        return clean


class ProgressResponseSerializer(serializers.Serializer):
    jobId = serializers.CharField()  # noqa: N815
    status = serializers.CharField()
    progress = AnyJSONField(allow_null=True)


class EventBodySerializer(serializers.Serializer):
    type = StrictCharField(min_length=1, max_length=100)
    data = AnyJSONField(required=False, allow_null=True, default=None)

    def validate_data(self, value):
        if value is not None and payload_size(value) > MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError("Data exceeds 1 MiB when serialized")
        return value


class KeepaliveSerializer(serializers.Serializer):
    extendSeconds = StrictIntegerField(  # noqa: N815
        required=False, allow_null=True, default=None, min_value=1, max_value=86400
    )


class CompleteSerializer(serializers.Serializer):
    result = AnyJSONField(required=False, allow_null=True, default=None)

    def validate_result(self, value):
        if value is not None and payload_size(value) > MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError("Result exceeds 1 MiB when serialized")
        return value


class ErrorTextField(serializers.Field):
    """An error: a string, or any JSON value (stored as its JSON text)."""

    def to_internal_value(self, data):
        import json

        if data is None or data == "":
            raise serializers.ValidationError("This field may not be empty.")
        text = data if isinstance(data, str) else json.dumps(data)
        return text[:MAX_ERROR_CHARS]

    def to_representation(self, value):
        return value


ErrorTextField = extend_schema_field(OpenApiTypes.ANY)(ErrorTextField)


class FailSerializer(serializers.Serializer):
    error = ErrorTextField()
    retry = StrictBooleanField(required=False, default=True)


class KillSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=2000)


class StatusSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    attemptNumber = serializers.IntegerField()  # noqa: N815


def status_json(job: Job) -> dict:
    return {"id": job.id, "status": job.status, "attemptNumber": attempt(job.attempt_number)}


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()


class LogSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    level = serializers.CharField()
    message = serializers.CharField()
    timestamp = serializers.DateTimeField()
    attributes = AnyJSONField()
    attemptNumber = serializers.IntegerField()  # noqa: N815


def log_json(line: JobLog) -> dict:
    return {
        "seq": line.seq,
        "level": line.level,
        "message": line.message,
        "timestamp": iso(line.timestamp),
        "attributes": line.attributes,
        "attemptNumber": attempt(line.attempt_number),
    }


class LogListSerializer(serializers.Serializer):
    logs = LogSerializer(many=True)
    hasMore = serializers.BooleanField()  # noqa: N815


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    code = serializers.CharField()
    details = AnyJSONField(required=False)


# Spellings other loggers use for the same levels (Python's WARNING and CRITICAL).
LEVEL_ALIASES = {"warning": "warn", "critical": "fatal"}
MAX_LOG_LINES = 10_000


def parse_log_lines(items: Any) -> tuple[list[dict], dict]:
    """Validate log lines; returns (clean lines, errors by line index)."""
    if not isinstance(items, list):
        return [], {"non_field_errors": ["Expected a JSON array or NDJSON lines of log objects"]}
    if len(items) > MAX_LOG_LINES:
        return [], {"non_field_errors": [f"At most {MAX_LOG_LINES} lines per request"]}
    now = timezone.now()
    clean: list[dict] = []
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        problems = []
        if not isinstance(item, dict):
            errors[str(index)] = ["Each line must be a JSON object"]
            continue
        level = item.get("level", "info")
        if not isinstance(level, str):
            problems.append("level must be a string")
        else:
            level = LEVEL_ALIASES.get(level.lower(), level.lower())
            if level not in LOG_LEVELS:
                problems.append(f"level must be one of {', '.join(LOG_LEVELS)}")
        message = item.get("message")
        if not isinstance(message, str) or message == "":
            problems.append("message must be a non-empty string")
        timestamp = _parse_timestamp(item.get("timestamp"), now)
        if timestamp is None:
            problems.append(f"timestamp must be ISO 8601 or epoch milliseconds, and {RANGE_ERROR}")
        if problems:
            errors[str(index)] = problems
            continue
        attributes = {k: v for k, v in item.items() if k not in ("level", "message", "timestamp")}
        clean.append(
            {"level": level, "message": message, "timestamp": timestamp, "attributes": attributes}
        )
    return clean, errors


def _parse_timestamp(value: Any, now: datetime) -> datetime | None:
    from django.utils.dateparse import parse_datetime

    if value is None:
        return now
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            # Numbers are epoch milliseconds (JavaScript's Date.now()).
            parsed = datetime.fromtimestamp(value / 1000, tz=UTC)
            return parsed if in_range(parsed) else None
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            return None
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        return parsed if in_range(parsed) else None
    return None


class BatchItemSerializer(serializers.Serializer):
    id = StrictCharField(max_length=26)
    claimId = StrictCharField(required=False, allow_null=True, max_length=26)  # noqa: N815
    result = AnyJSONField(required=False, allow_null=True, default=None)
    error = ErrorTextField(required=False)
    retry = StrictBooleanField(required=False, default=True)


class BatchResultSerializer(serializers.Serializer):
    id = serializers.CharField()
    ok = serializers.BooleanField()
    status = serializers.CharField(required=False)
    error = serializers.CharField(required=False)
    code = serializers.CharField(required=False)


class BatchResponseSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True)
