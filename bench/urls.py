"""Bench-only URLconf: the service's routes plus `bench/floor`, the framework floor.

`bench/floor` goes through what every API call pays before its own work (the middleware, DRF,
key authentication, the per-key rate limit and a scope check) and answers {"ok": true}, so the
per-call figures in bench/run.py can be read against it. Only bench/settings.py selects this
module: the service has no such endpoint.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls import handler404, handler500
from config.urls import urlpatterns as service_urlpatterns
from jobs.api.views import ApiView
from spaces import scopes


class FloorView(ApiView):
    """A token-authenticated view that does nothing: the cost of the framework alone."""

    scopes_by_method = {"GET": (scopes.READ,)}

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/floor", FloorView.as_view(), name="bench-floor"),
    *service_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
