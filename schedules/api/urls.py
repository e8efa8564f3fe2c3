from django.urls import path

from . import views

urlpatterns = [
    path(
        "spaces/<str:spaceId>/schedules",
        views.ScheduleListView.as_view(),
        name="schedules-api-list",
    ),
    path(
        "spaces/<str:spaceId>/schedules/<str:name>",
        views.ScheduleDetailView.as_view(),
        name="schedules-api-detail",
    ),
    path(
        "spaces/<str:spaceId>/schedules/<str:name>/pause",
        views.SchedulePauseView.as_view(),
        name="schedules-api-pause",
    ),
    path(
        "spaces/<str:spaceId>/schedules/<str:name>/resume",
        views.ScheduleResumeView.as_view(),
        name="schedules-api-resume",
    ),
    path(
        "spaces/<str:spaceId>/schedules/<str:name>/trigger",
        views.ScheduleTriggerView.as_view(),
        name="schedules-api-trigger",
    ),
]
