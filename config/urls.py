from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("schedules.api.urls")),
    path("", include("dashboard.urls")),
]

handler404 = "config.views.handler404"
handler500 = "config.views.handler500"
