"""API routes under /api/v1/ (names jobs-api-<verb>)."""

from __future__ import annotations

from django.urls import path

from . import docs, groups, limits, operator, views

urlpatterns = [
    path("schema", docs.SchemaView.as_view(), name="jobs-api-schema"),
    path("docs", docs.DocsView.as_view(), name="jobs-api-docs"),
    path("spaces/<str:spaceId>/jobs", views.SpaceJobsView.as_view(), name="jobs-api-jobs"),
    path("spaces/<str:spaceId>/jobs/poll", views.PollView.as_view(), name="jobs-api-poll"),
    path("spaces/<str:spaceId>/limits", limits.LimitListView.as_view(), name="jobs-api-limits"),
    path(
        "spaces/<str:spaceId>/limits/<str:name>",
        limits.LimitDetailView.as_view(),
        name="jobs-api-limit",
    ),
    path(
        "spaces/<str:spaceId>/groups/<str:groupId>",
        groups.GroupDetailView.as_view(),
        name="jobs-api-group",
    ),
    path("spaces/<str:spaceId>/workers", operator.WorkersView.as_view(), name="jobs-api-workers"),
    path(
        "spaces/<str:spaceId>/overview", operator.OverviewView.as_view(), name="jobs-api-overview"
    ),
    path("spaces/<str:spaceId>/errors", operator.ErrorGroupsView.as_view(), name="jobs-api-errors"),
    path(
        "spaces/<str:spaceId>/errors/<str:fingerprint>/retry",
        operator.ErrorGroupRetryView.as_view(),
        name="jobs-api-error-retry",
    ),
    path(
        "spaces/<str:spaceId>/errors/<str:fingerprint>/kill",
        operator.ErrorGroupKillView.as_view(),
        name="jobs-api-error-kill",
    ),
    # The batch routes come before jobs/<id>: "complete" is not a job id.
    path("jobs/complete", views.BatchCompleteView.as_view(), name="jobs-api-complete-batch"),
    path("jobs/fail", views.BatchFailView.as_view(), name="jobs-api-fail-batch"),
    path("jobs/<str:jobId>", views.JobDetailView.as_view(), name="jobs-api-detail"),
    path("jobs/<str:jobId>/claim", views.ClaimView.as_view(), name="jobs-api-claim"),
    path("jobs/<str:jobId>/ack", views.AckView.as_view(), name="jobs-api-ack"),
    path("jobs/<str:jobId>/progress", views.ProgressView.as_view(), name="jobs-api-progress"),
    path("jobs/<str:jobId>/checkpoint", views.CheckpointView.as_view(), name="jobs-api-checkpoint"),
    path("jobs/<str:jobId>/event", views.EventView.as_view(), name="jobs-api-event"),
    path("jobs/<str:jobId>/keepalive", views.KeepaliveView.as_view(), name="jobs-api-keepalive"),
    path("jobs/<str:jobId>/logs", views.LogsView.as_view(), name="jobs-api-logs"),
    path("jobs/<str:jobId>/complete", views.CompleteView.as_view(), name="jobs-api-complete"),
    path("jobs/<str:jobId>/fail", views.FailView.as_view(), name="jobs-api-fail"),
    path("jobs/<str:jobId>/kill", views.KillView.as_view(), name="jobs-api-kill"),
    path("jobs/<str:jobId>/retry", views.RetryView.as_view(), name="jobs-api-retry"),
]
