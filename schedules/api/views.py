"""Recurring schedules API: /api/v1/spaces/{spaceId}/schedules[/{name}[/pause|resume|trigger]]."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api.docs import error_responses
from jobs.api.serializers import JobCreatedSerializer, created_json
from jobs.api.views import ApiView
from lib import errors
from spaces import scopes

from .. import services
from ..models import Schedule
from .serializers import ScheduleWriteSerializer, schedule_json

TAGS = ["schedules"]
# Schedules per space: enough for real use, bounded so one key cannot fill the table.
MAX_SCHEDULES_PER_SPACE = 1000


class ScheduleResponse(serializers.Serializer):
    name = serializers.CharField()
    cron = serializers.CharField()
    timezone = serializers.CharField()
    enabled = serializers.BooleanField()
    overlap = serializers.CharField()
    job = serializers.DictField()
    nextRunAt = serializers.DateTimeField(allow_null=True)  # noqa: N815 - API field name
    lastRunAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    lastJobId = serializers.CharField(allow_null=True)  # noqa: N815
    nextRuns = serializers.ListField(child=serializers.DateTimeField(), required=False)  # noqa: N815


class ScheduleListResponse(serializers.Serializer):
    schedules = ScheduleResponse(many=True)


# The errors of a call that needs no body: one is still read, so its size, media type and JSON
# are checked (_ScheduleView.get_schedule).
BODY_READ = (400, 401, 403, 404, 413, 415, 429)


def _errors(*codes: int) -> dict:
    return error_responses(
        *codes,
        _404="Unknown schedule, or a spaceId that is not the key's space",
        _409="A schedule with that name exists (`schedule_exists`)",
        _400="Validation failed (`validation_error`), malformed JSON (`parse_error`) or too many "
        "schedules (`too_many_schedules`)",
    )


class _ScheduleView(ApiView):
    def get_schedule(self, space_id: str, name: str) -> Schedule:
        # Parse any body even where it is ignored, so the size and content-type rules apply.
        _ = self.request.data
        self.check_space(space_id)
        schedule = (
            Schedule.objects.select_related("space").filter(space=self.key.space, name=name).first()
        )
        if schedule is None:
            raise errors.NotFound("not_found", "Schedule not found")
        return schedule


class ScheduleListView(_ScheduleView):
    scopes_by_method = {"GET": (scopes.READ,), "POST": (scopes.SCHEDULES_WRITE,)}

    @extend_schema(
        operation_id="listSchedules",
        summary="List the space's schedules, by name",
        tags=TAGS,
        responses={200: ScheduleListResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        rows = Schedule.objects.filter(space=self.key.space).order_by("name")[
            :MAX_SCHEDULES_PER_SPACE
        ]
        return Response({"schedules": [schedule_json(s) for s in rows]})

    @extend_schema(
        operation_id="createSchedule",
        summary="Create a schedule: a cron rhythm and the job it creates",
        tags=TAGS,
        request=ScheduleWriteSerializer,
        responses={201: ScheduleResponse, **_errors(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        data = self.validate(ScheduleWriteSerializer, self.body(request))
        space = self.key.space
        if Schedule.objects.filter(space=space).count() >= MAX_SCHEDULES_PER_SPACE:
            raise errors.Invalid(
                "too_many_schedules", f"At most {MAX_SCHEDULES_PER_SPACE} schedules per space"
            )
        schedule = Schedule(
            space=space,
            name=data["name"],
            cron=data["cron"],
            timezone=data["timezone"],
            enabled=data["enabled"],
            overlap=data["overlap"],
            job_template=data["job"],
        )
        schedule.next_run_at = services.compute_next(schedule, timezone.now())
        try:
            with transaction.atomic():
                schedule.save()
        except IntegrityError:
            raise errors.Conflict(
                "schedule_exists", f"A schedule named {data['name']!r} exists"
            ) from None
        return Response(schedule_json(schedule, upcoming=5), status=status.HTTP_201_CREATED)


class ScheduleDetailView(_ScheduleView):
    scopes_by_method = {
        "GET": (scopes.READ,),
        "PATCH": (scopes.SCHEDULES_WRITE,),
        "DELETE": (scopes.SCHEDULES_WRITE,),
    }

    @extend_schema(
        operation_id="getSchedule",
        summary="A schedule with its next five runs",
        tags=TAGS,
        responses={200: ScheduleResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, spaceId: str, name: str) -> Response:
        return Response(schedule_json(self.get_schedule(spaceId, name), upcoming=5))

    @extend_schema(
        operation_id="updateSchedule",
        summary="Change some of a schedule's fields; timing changes restart from now",
        tags=TAGS,
        request=ScheduleWriteSerializer(partial=True),
        responses={200: ScheduleResponse, **_errors(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def patch(self, request: Request, spaceId: str, name: str) -> Response:
        schedule = self.get_schedule(spaceId, name)
        serializer = ScheduleWriteSerializer(data=self.body(request), partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        fields = {
            "name": "name",
            "cron": "cron",
            "timezone": "timezone",
            "enabled": "enabled",
            "overlap": "overlap",
            "job": "job_template",
        }
        for given, attr in fields.items():
            if given in data:
                setattr(schedule, attr, data[given])
        # Timing changes restart the rhythm from now.
        schedule.next_run_at = services.compute_next(schedule, timezone.now())
        try:
            with transaction.atomic():
                schedule.save()
        except IntegrityError:
            raise errors.Conflict(
                "schedule_exists", f"A schedule named {schedule.name!r} exists"
            ) from None
        return Response(schedule_json(schedule, upcoming=5))

    @extend_schema(
        operation_id="deleteSchedule",
        summary="Delete a schedule (the jobs it created stay)",
        tags=TAGS,
        responses={204: None, **_errors(*BODY_READ)},
    )
    def delete(self, request: Request, spaceId: str, name: str) -> Response:
        self.get_schedule(spaceId, name).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchedulePauseView(_ScheduleView):
    scopes_by_method = {"POST": (scopes.SCHEDULES_WRITE,)}

    @extend_schema(
        operation_id="pauseSchedule",
        summary="Pause a schedule: no runs until resumed",
        tags=TAGS,
        request=None,
        responses={200: ScheduleResponse, **_errors(*BODY_READ)},
    )
    def post(self, request: Request, spaceId: str, name: str) -> Response:
        schedule = self.get_schedule(spaceId, name)
        services.pause(schedule)
        return Response(schedule_json(schedule))


class ScheduleResumeView(_ScheduleView):
    scopes_by_method = {"POST": (scopes.SCHEDULES_WRITE,)}

    @extend_schema(
        operation_id="resumeSchedule",
        summary="Resume a paused schedule from now",
        tags=TAGS,
        request=None,
        responses={200: ScheduleResponse, **_errors(*BODY_READ)},
    )
    def post(self, request: Request, spaceId: str, name: str) -> Response:
        schedule = self.get_schedule(spaceId, name)
        services.resume(schedule)
        return Response(schedule_json(schedule, upcoming=5))


class ScheduleTriggerView(_ScheduleView):
    scopes_by_method = {"POST": (scopes.SCHEDULES_WRITE,)}

    @extend_schema(
        operation_id="triggerSchedule",
        summary="Create the schedule's job now, outside its rhythm",
        tags=TAGS,
        request=None,
        responses={
            201: OpenApiResponse(JobCreatedSerializer, description="The job created"),
            **_errors(*BODY_READ),
        },
    )
    def post(self, request: Request, spaceId: str, name: str) -> Response:
        job = services.trigger_now(self.get_schedule(spaceId, name))
        return Response(created_json(job), status=status.HTTP_201_CREATED)
