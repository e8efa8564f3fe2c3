"""Flow-control limits API (beyond the emit.run API):

GET    /api/v1/spaces/{spaceId}/limits          jobs:read
PUT    /api/v1/spaces/{spaceId}/limits/{name}   limits:write   {"concurrency": 5, "rate": 10,
                                                               "keyConcurrency": 1, "keyRate": 2}
DELETE /api/v1/spaces/{spaceId}/limits/{name}   limits:write
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import flow
from jobs.models import NameLimit
from lib import errors
from spaces import scopes

from .docs import error_responses
from .views import ApiView

MAX_LIMITS_PER_SPACE = 1000
LIMIT_FIELDS = ("concurrency", "rate", "key_concurrency", "key_rate")


class LimitBodySerializer(serializers.Serializer):
    concurrency = serializers.IntegerField(
        min_value=1, max_value=100000, required=False, allow_null=True, default=None
    )
    rate = serializers.FloatField(
        min_value=0.001, max_value=100000, required=False, allow_null=True, default=None
    )
    # For each distinct concurrencyKey of the name (docs/workflows.md, "Concurrency per key").
    keyConcurrency = serializers.IntegerField(  # noqa: N815
        source="key_concurrency",
        min_value=1,
        max_value=100000,
        required=False,
        allow_null=True,
        default=None,
    )
    keyRate = serializers.FloatField(  # noqa: N815
        source="key_rate",
        min_value=0.001,
        max_value=100000,
        required=False,
        allow_null=True,
        default=None,
    )

    def validate(self, attrs: dict) -> dict:
        if all(attrs.get(f) is None for f in LIMIT_FIELDS):
            raise serializers.ValidationError(
                "Set concurrency, rate, keyConcurrency or keyRate (DELETE removes a limit)"
            )
        return attrs


class LimitSerializer(serializers.Serializer):
    name = serializers.CharField()
    concurrency = serializers.IntegerField(allow_null=True)
    rate = serializers.FloatField(allow_null=True)
    keyConcurrency = serializers.IntegerField(allow_null=True)  # noqa: N815
    keyRate = serializers.FloatField(allow_null=True)  # noqa: N815


class LimitListSerializer(serializers.Serializer):
    limits = LimitSerializer(many=True)


def _errors(*codes: int) -> dict:
    return error_responses(*codes, _404="No limit for that name, or a spaceId not the key's")


class LimitListView(ApiView):
    scopes_by_method = {"GET": (scopes.READ,)}

    @extend_schema(
        operation_id="listLimits",
        summary="List the space's limits, by name",
        responses={200: LimitListSerializer, **_errors(401, 403, 404, 429)},
        tags=["limits"],
    )
    def get(self, request: Request, spaceId: str) -> Response:
        self.check_space(spaceId)
        rows = NameLimit.objects.filter(space=self.key.space).order_by("name")[
            :MAX_LIMITS_PER_SPACE
        ]
        return Response({"limits": [flow.limit_json(row) for row in rows]})


class LimitDetailView(ApiView):
    scopes_by_method = {"PUT": (scopes.LIMITS_WRITE,), "DELETE": (scopes.LIMITS_WRITE,)}

    @extend_schema(
        operation_id="setLimit",
        summary="Set the concurrency and rate limits of one job name, and per concurrencyKey",
        request=LimitBodySerializer,
        responses={200: LimitSerializer, **_errors(400, 401, 403, 404, 413, 415, 429)},
        tags=["limits"],
    )
    def put(self, request: Request, spaceId: str, name: str) -> Response:
        self.check_space(spaceId)
        if not 1 <= len(name) <= 200:
            raise errors.Invalid(
                "validation_error",
                "Validation failed",
                details={"name": ["1 to 200 characters"]},
            )
        data = self.validate(LimitBodySerializer, self.body(request))
        space = self.key.space
        exists = NameLimit.objects.filter(space=space, name=name).exists()
        if not exists and NameLimit.objects.filter(space=space).count() >= MAX_LIMITS_PER_SPACE:
            raise errors.Invalid(
                "too_many_limits", f"At most {MAX_LIMITS_PER_SPACE} limits per space"
            )
        limit = flow.set_limit(space, name, **{f: data[f] for f in LIMIT_FIELDS})
        return Response(flow.limit_json(limit))

    @extend_schema(
        operation_id="deleteLimit",
        summary="Remove the limit of one job name",
        responses={204: None, **_errors(400, 401, 403, 404, 413, 415, 429)},
        tags=["limits"],
    )
    def delete(self, request: Request, spaceId: str, name: str) -> Response:
        self.check_space(spaceId)
        _ = request.data
        deleted, _ = NameLimit.objects.filter(space=self.key.space, name=name).delete()
        if not deleted:
            raise errors.NotFound("not_found", "No limit for that name")
        return Response(status=status.HTTP_204_NO_CONTENT)
