"""WebSocket routes (served through config/asgi.py by the web process, config/serve.py)."""

from django.urls import re_path

from .consumers import JobStreamConsumer, NotFoundConsumer, SpaceStreamConsumer

websocket_urlpatterns = [
    # Before the job route, which would otherwise take "spaces" for a job id.
    re_path(r"^api/v1/realtime/spaces/(?P<space_id>[^/]+)/?$", SpaceStreamConsumer.as_asgi()),
    re_path(r"^api/v1/realtime/(?P<job_id>[^/]+)/?$", JobStreamConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
