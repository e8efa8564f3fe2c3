from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from jobs.api.serializers import JobCreateSerializer, iso

from .. import cron
from ..models import Schedule


class ScheduleWriteSerializer(serializers.Serializer):
    """Create (all fields) or update (partial) a schedule."""

    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", max_length=100)
    cron = serializers.CharField(max_length=100)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    enabled = serializers.BooleanField(required=False, default=True)
    overlap = serializers.ChoiceField(
        choices=Schedule.Overlap.choices, required=False, default="allow"
    )
    job = serializers.DictField(
        help_text="The job template: the body of POST /spaces/{spaceId}/jobs"
    )

    def validate_cron(self, value: str) -> str:
        error = cron.validate_expression(value)
        if error:
            raise serializers.ValidationError(error)
        return value.strip()

    def validate_timezone(self, value: str) -> str:
        error = cron.validate_timezone(value)
        if error:
            raise serializers.ValidationError(error)
        return value

    def validate_job(self, value: dict) -> dict:
        if "scheduledFor" in value or "idempotencyKey" in value:
            raise serializers.ValidationError(
                "scheduledFor and idempotencyKey are set by the schedule"
            )
        check = JobCreateSerializer(data=value)
        if not check.is_valid():
            raise serializers.ValidationError(check.errors)
        return value


def schedule_json(schedule: Schedule, upcoming: int = 0) -> dict:
    body = {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "overlap": schedule.overlap,
        "job": schedule.job_template,
        "nextRunAt": iso(schedule.next_run_at) if schedule.enabled else None,
        "lastRunAt": iso(schedule.last_run_at),
        "lastJobId": schedule.last_job_id or None,
        "createdAt": iso(schedule.created_at),
        "updatedAt": iso(schedule.updated_at),
    }
    if upcoming:
        runs = (
            cron.upcoming(schedule.cron, schedule.timezone, timezone.now(), upcoming)
            if schedule.enabled
            else []
        )
        body["nextRuns"] = [iso(moment) for moment in runs]
    return body
