from django.contrib import admin
from django.urls import include, path

from config import health, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("schedules.api.urls")),
    # Operations (config/health.py, config/metrics.py); ProbeMiddleware also serves these.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("dashboard.urls")),
]

handler404 = "config.views.handler404"
handler500 = "config.views.handler500"
