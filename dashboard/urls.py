from django.contrib.auth import views as auth_views
from django.urls import path

from . import operator, views

# Names carry the app prefix; the job page's path is part of the cross-team contract
# (notifications link to {PUBLIC_URL}/spaces/<space id>/jobs/<job id>).
urlpatterns = [
    # Django's auth views under their usual names. Password reset by email is left out: the
    # service sends no email, so its form could only fail.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/signup/", views.signup, name="dashboard-signup"),
    path("", views.home, name="dashboard-home"),
    path("organizations/new/", views.org_create, name="dashboard-org-create"),
    path("orgs/<slug:slug>/", views.org_spaces, name="dashboard-org"),
    path("orgs/<slug:slug>/switch/", views.org_switch, name="dashboard-org-switch"),
    path("orgs/<slug:slug>/members/", views.org_members, name="dashboard-members"),
    path(
        "orgs/<slug:slug>/members/<int:membership_id>/role/",
        views.member_role,
        name="dashboard-member-role",
    ),
    path(
        "orgs/<slug:slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="dashboard-member-remove",
    ),
    path(
        "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="dashboard-invitation-revoke",
    ),
    path("invitations/", views.invitations, name="dashboard-invitations"),
    path(
        "invitations/<str:token>/accept/",
        views.invitation_accept,
        name="dashboard-invitation-accept",
    ),
    path(
        "invitations/<str:token>/decline/",
        views.invitation_decline,
        name="dashboard-invitation-decline",
    ),
    path("spaces/<str:public_id>/", views.space_jobs, name="dashboard-space"),
    path("spaces/<str:public_id>/chart.json", views.space_chart, name="dashboard-chart"),
    path("spaces/<str:public_id>/counts.json", views.space_counts, name="dashboard-counts"),
    path("spaces/<str:public_id>/jobs/bulk/", views.jobs_bulk, name="dashboard-jobs-bulk"),
    path("spaces/<str:public_id>/jobs/<str:job_id>", views.job_detail, name="dashboard-job"),
    path(
        "spaces/<str:public_id>/jobs/<str:job_id>/kill",
        views.job_kill,
        name="dashboard-job-kill",
    ),
    path(
        "spaces/<str:public_id>/jobs/<str:job_id>/retry",
        views.job_retry,
        name="dashboard-job-retry",
    ),
    path(
        "spaces/<str:public_id>/jobs/<str:job_id>/logs",
        views.job_logs,
        name="dashboard-job-logs",
    ),
    path("spaces/<str:public_id>/tokens/", views.space_tokens, name="dashboard-tokens"),
    path(
        "spaces/<str:public_id>/tokens/<int:key_id>/revoke/",
        views.token_revoke,
        name="dashboard-token-revoke",
    ),
    path("spaces/<str:public_id>/settings/", views.space_settings, name="dashboard-settings"),
    path(
        "spaces/<str:public_id>/settings/test-slack/",
        views.settings_test_slack,
        name="dashboard-test-slack",
    ),
    path(
        "spaces/<str:public_id>/settings/test-push/",
        views.settings_test_push,
        name="dashboard-test-push",
    ),
    path(
        "spaces/<str:public_id>/settings/rotate-secret/",
        views.settings_rotate_secret,
        name="dashboard-rotate-secret",
    ),
    path("spaces/<str:public_id>/schedules/", views.space_schedules, name="dashboard-schedules"),
    path(
        "spaces/<str:public_id>/schedules/<str:name>/",
        views.schedule_detail,
        name="dashboard-schedule",
    ),
    path(
        "spaces/<str:public_id>/schedules/<str:name>/pause/",
        views.schedule_pause,
        name="dashboard-schedule-pause",
    ),
    path(
        "spaces/<str:public_id>/schedules/<str:name>/resume/",
        views.schedule_resume,
        name="dashboard-schedule-resume",
    ),
    path(
        "spaces/<str:public_id>/schedules/<str:name>/trigger/",
        views.schedule_trigger,
        name="dashboard-schedule-trigger",
    ),
    path(
        "spaces/<str:public_id>/schedules/<str:name>/delete/",
        views.schedule_delete,
        name="dashboard-schedule-delete",
    ),
    path("spaces/<str:public_id>/limits/", views.space_limits, name="dashboard-limits"),
    path("spaces/<str:public_id>/workers/", operator.space_workers, name="dashboard-workers"),
    path("spaces/<str:public_id>/overview/", operator.space_overview, name="dashboard-overview"),
    path("spaces/<str:public_id>/errors/", operator.space_errors, name="dashboard-errors"),
    path(
        "spaces/<str:public_id>/errors/<str:fingerprint>/",
        operator.error_group_action,
        name="dashboard-error-group",
    ),
    path("spaces/<str:public_id>/pause/", views.space_pause, name="dashboard-space-pause"),
    path("spaces/<str:public_id>/resume/", views.space_resume, name="dashboard-space-resume"),
    path("spaces/<str:public_id>/delete/", views.space_delete, name="dashboard-space-delete"),
]
