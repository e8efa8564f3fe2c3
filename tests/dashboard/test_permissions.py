"""Tenancy: an outsider gets 404 on every dashboard page, a member gets 403 on manage-only ones."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, reverse

from dashboard import urls as dashboard_urls
from orgs.models import Invitation

# name -> (method, kind of object the URL names, manage-only)
MATRIX = {
    "dashboard-org": ("get", "org", False),
    "dashboard-org-switch": ("post", "org", False),
    "dashboard-members": ("get", "org", False),
    "dashboard-member-role": ("post", "membership", True),
    "dashboard-member-remove": ("post", "membership", True),
    "dashboard-invitation-revoke": ("post", "invitation", True),
    "dashboard-space": ("get", "space", False),
    "dashboard-chart": ("get", "space", False),
    "dashboard-counts": ("get", "space", False),
    "dashboard-jobs-bulk": ("post", "space", False),
    "dashboard-job": ("get", "job", False),
    "dashboard-job-kill": ("post", "job", False),
    "dashboard-job-retry": ("post", "job", False),
    "dashboard-job-logs": ("get", "job", False),
    "dashboard-tokens": ("get", "space", True),
    "dashboard-token-revoke": ("post", "key", True),
    "dashboard-settings": ("get", "space", True),
    "dashboard-test-slack": ("post", "space", True),
    "dashboard-test-push": ("post", "space", True),
    "dashboard-rotate-secret": ("post", "space", True),
    "dashboard-space-pause": ("post", "space", True),
    "dashboard-space-resume": ("post", "space", True),
    "dashboard-space-delete": ("get", "space", True),
    "dashboard-schedules": ("get", "space", False),
    "dashboard-schedule": ("get", "schedule", False),
    "dashboard-schedule-pause": ("post", "schedule", True),
    "dashboard-schedule-resume": ("post", "schedule", True),
    "dashboard-schedule-trigger": ("post", "schedule", True),
    "dashboard-schedule-delete": ("post", "schedule", True),
    "dashboard-limits": ("get", "space", False),
    "dashboard-workers": ("get", "space", False),
    "dashboard-overview": ("get", "space", False),
    "dashboard-errors": ("get", "space", False),
    "dashboard-error-group": ("post", "error group", False),
}
# Pages that name no organization or space.
UNSCOPED = {
    "dashboard-home",
    "dashboard-signup",
    "dashboard-org-create",
    # The signed-in user's own invitations (tests/dashboard/test_invitations.py).
    "dashboard-invitations",
    "dashboard-invitation-accept",
    "dashboard-invitation-decline",
    "login",
    "logout",
    "password_change",
    "password_change_done",
}


def _url(name: str, kind: str, cast, job, token_row, schedule) -> str:
    org_kw = {"slug": cast.org.slug}
    space_kw = {"public_id": cast.space.public_id}
    if kind == "invitation":
        invitation = Invitation.objects.create(
            organization=cast.org,
            invitee="dana@example.com",
            email="dana@example.com",
            role="member",
        )
        return reverse(name, kwargs={**org_kw, "invitation_id": invitation.pk})
    kwargs = {
        "org": org_kw,
        "membership": {**org_kw, "membership_id": cast.org.memberships.get(user=cast.bob).pk},
        "space": space_kw,
        "job": {**space_kw, "job_id": job.id},
        "key": {**space_kw, "key_id": token_row.pk},
        "schedule": {**space_kw, "name": schedule.name},
        "error group": {**space_kw, "fingerprint": "0123456789abcdef"},
    }[kind]
    return reverse(name, kwargs=kwargs)


def test_the_matrix_covers_every_dashboard_url():
    names = {p.name for p in dashboard_urls.urlpatterns if isinstance(p, URLPattern)}
    assert names - UNSCOPED == set(MATRIX)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_outsiders_get_404(client, cast, job, token_row, schedule, name):
    method, kind, _ = MATRIX[name]
    client.force_login(cast.charlie)
    response = getattr(client, method)(_url(name, kind, cast, job, token_row, schedule))
    assert response.status_code == 404


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_anonymous_users_are_sent_to_the_login_page(client, cast, job, token_row, schedule, name):
    method, kind, _ = MATRIX[name]
    response = getattr(client, method)(_url(name, kind, cast, job, token_row, schedule))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", sorted(n for n, (_, _, manage) in MATRIX.items() if manage))
def test_members_get_403_on_manage_only_pages(client, cast, job, token_row, schedule, name):
    method, kind, _ = MATRIX[name]
    client.force_login(cast.bob)
    response = getattr(client, method)(_url(name, kind, cast, job, token_row, schedule))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "name",
    sorted(n for n, (m, _, manage) in MATRIX.items() if not manage and m == "get"),
)
def test_members_see_the_read_pages(client, cast, job, token_row, schedule, name):
    _, kind, _ = MATRIX[name]
    client.force_login(cast.bob)
    response = client.get(_url(name, kind, cast, job, token_row, schedule))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "name", sorted(n for n, (m, _, manage) in MATRIX.items() if manage and m == "get")
)
def test_admins_see_the_manage_pages(client, cast, job, token_row, schedule, name):
    _, kind, _ = MATRIX[name]
    client.force_login(cast.alice)
    response = client.get(_url(name, kind, cast, job, token_row, schedule))
    assert response.status_code == 200


def test_a_job_of_another_space_is_404_even_through_an_own_space(client, cast, job):
    client.force_login(cast.charlie)
    url = reverse(
        "dashboard-job", kwargs={"public_id": cast.other_space.public_id, "job_id": job.id}
    )
    assert client.get(url).status_code == 404


def test_members_cannot_create_spaces_or_add_members(client, cast):
    client.force_login(cast.bob)
    org_url = reverse("dashboard-org", kwargs={"slug": cast.org.slug})
    assert client.post(org_url, {"name": "sneaky"}).status_code == 403
    members_url = reverse("dashboard-members", kwargs={"slug": cast.org.slug})
    assert client.post(members_url, {"user": "charlie", "role": "member"}).status_code == 403
    assert not cast.org.spaces.filter(name="sneaky").exists()
    assert cast.org.role_of(cast.charlie) is None


def test_outsiders_cannot_create_spaces_in_an_org(client, cast):
    client.force_login(cast.charlie)
    org_url = reverse("dashboard-org", kwargs={"slug": cast.org.slug})
    assert client.post(org_url, {"name": "sneaky"}).status_code == 404


def test_the_404_and_403_pages_are_the_dashboards(client, cast):
    client.force_login(cast.charlie)
    response = client.get(reverse("dashboard-space", kwargs={"public_id": cast.space.public_id}))
    assert "do not have access" in response.content.decode()
    client.force_login(cast.bob)
    response = client.get(reverse("dashboard-tokens", kwargs={"public_id": cast.space.public_id}))
    assert "Only owners and admins" in response.content.decode()
