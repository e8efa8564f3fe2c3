"""The OpenAPI document (/api/v1/schema) and the docs page rendering it (/api/v1/docs).

The page is drf-spectacular's Swagger UI, its files served by the service itself from
drf-spectacular-sidecar (SPECTACULAR_SETTINGS), so it works with no internet access. "Authorize"
takes a key either way (Bearer or X-Api-Key) and "Try it out" sends real requests with it.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from .serializers import ErrorSerializer

# What each error status means on any operation (docs/api.md, "Errors"); an operation may say
# it more precisely for itself.
ERRORS = {
    400: "Validation failed (`validation_error`, `details` per field) or malformed JSON "
    "(`parse_error`)",
    401: "Invalid or missing API key (`invalid_api_key`)",
    403: "The key lacks the scope (`missing_scope`: Missing required scope: <scope>)",
    404: "Not found (`not_found`): no such object, or a spaceId that is not the key's space",
    409: "The object's state does not allow it now",
    413: "Request body too large (`payload_too_large`)",
    415: "Unsupported content type or encoding (`unsupported_media_type`)",
    429: "Rate limited (`rate_limited`); Retry-After says when to come back",
}


def error_responses(*codes: int, **described: str) -> dict[int, OpenApiResponse]:
    """The error answers of one operation: CODES with the ERRORS wording, or the operation's
    own given as e.g. `_404="Unknown schedule"` (a keyword cannot start with a digit)."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=described.get(f"_{code}", ERRORS[code]))
        for code in codes
    }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "spaces.auth.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer emit_<secret>`",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "`X-Api-Key: emit_<secret>`",
            },
        ]

    def get_security_requirement(self, auto_schema):
        # Either header will do: one requirement object each (alternatives), where one object
        # naming both would require both at once.
        return [{name: []} for name in self.name]


class SchemaView(SpectacularAPIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class DocsView(SpectacularSwaggerView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    url_name = "jobs-api-schema"
    title = "Jobyard API"
