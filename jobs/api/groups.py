"""Groups with a completion step (docs/workflows.md, "Groups"):

GET /api/v1/spaces/{spaceId}/groups/{groupId}   jobs:read   a group's progress

Groups are made by the job create (`group` on the body); this reads one back.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import groups
from jobs.models import JobGroup
from jobs.queries import iso
from lib import errors
from spaces import scopes

from .docs import error_responses
from .views import ApiView


class GroupSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Members finished: completed + dead + killed")
    completed = serializers.IntegerField()
    dead = serializers.IntegerField()
    killed = serializers.IntegerField()
    completionJobId = serializers.CharField(allow_null=True)  # noqa: N815
    firedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815


def group_json(group: JobGroup) -> dict:
    return {
        "id": group.pk,
        "name": group.name,
        "total": group.total,
        "done": group.done,
        "completed": group.completed,
        "dead": group.dead,
        "killed": group.killed,
        "completionJobId": group.completion_job_id,
        "firedAt": iso(group.fired_at),
        "createdAt": iso(group.created_at),
    }


class GroupDetailView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="getGroup",
        summary="A group's progress (done/total, outcomes) and its completion job once fired",
        responses={
            200: GroupSerializer,
            **error_responses(401, 403, 404, 429, _404="Unknown group, or one of another space"),
        },
        tags=["jobs"],
    )
    def get(self, request: Request, spaceId: str, groupId: str) -> Response:
        self.check_space(spaceId)
        group = groups.get_group(self.key.space, groupId)
        if group is None:
            raise errors.NotFound("not_found", "Group not found")
        return Response(group_json(group))
