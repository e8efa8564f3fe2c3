from __future__ import annotations

from django.urls import reverse

from jobs.models import Job
from notifications.models import SpaceChannels
from spaces.models import Space


def test_an_admin_creates_a_space_with_its_public_key(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        reverse("dashboard-org", kwargs={"slug": cast.org.slug}), {"name": "etl"}
    )
    space = Space.objects.get(organization=cast.org, name="etl")
    assert response["Location"] == reverse("dashboard-space", kwargs={"public_id": space.public_id})
    assert space.api_keys.filter(is_public=True).exists()


def test_space_names_must_be_unique_in_the_org(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        reverse("dashboard-org", kwargs={"slug": cast.org.slug}), {"name": "main"}
    )
    assert response.status_code == 200
    assert "already has a space with this name" in response.content.decode()


def test_the_spaces_list_shows_counts_per_status(client, cast):
    Job.objects.create(space=cast.space, name="a", status="pending")
    Job.objects.create(space=cast.space, name="b", status="pending")
    Job.objects.create(space=cast.space, name="c", status="dead")
    client.force_login(cast.bob)
    response = client.get(reverse("dashboard-org", kwargs={"slug": cast.org.slug}))
    counts = response.context["spaces"][0].counts
    assert counts["pending"] == 2
    assert counts["dead"] == 1
    assert counts["completed"] == 0


def test_the_spaces_list_prefers_the_maintained_counters(client, cast):
    Space.objects.filter(pk=cast.space.pk).update(status_counts={"running": 7})
    client.force_login(cast.bob)
    response = client.get(reverse("dashboard-org", kwargs={"slug": cast.org.slug}))
    assert response.context["spaces"][0].counts["running"] == 7


def test_the_spaces_list_masks_webhook_urls(client, cast):
    SpaceChannels.objects.create(
        space=cast.space,
        slack_webhook_url="https://hooks.slack.com/services/T000/B000/SECRETTOKEN",
        push_url="https://worker.example.com/wake?key=SECRETKEY",
    )
    client.force_login(cast.alice)
    html = client.get(reverse("dashboard-org", kwargs={"slug": cast.org.slug})).content.decode()
    assert "SECRETTOKEN" not in html
    assert "SECRETKEY" not in html
    assert "hooks.slack.com" in html


def test_rename_and_retention_are_saved_from_the_general_form(client, cast):
    client.force_login(cast.alice)
    url = reverse("dashboard-settings", kwargs={"public_id": cast.space.public_id})
    client.post(
        url,
        {
            "form": "general",
            "name": "renamed",
            "retention_completed_days": "3",
            "retention_failed_days": "9",
        },
    )
    cast.space.refresh_from_db()
    assert (cast.space.name, cast.space.retention_completed_days) == ("renamed", 3)
    assert cast.space.retention_failed_days == 9


def test_rename_rejects_a_taken_name(client, cast):
    Space.create(cast.org, "other")
    client.force_login(cast.alice)
    url = reverse("dashboard-settings", kwargs={"public_id": cast.space.public_id})
    response = client.post(
        url,
        {
            "form": "general",
            "name": "other",
            "retention_completed_days": "3",
            "retention_failed_days": "9",
        },
    )
    assert response.status_code == 200
    cast.space.refresh_from_db()
    assert cast.space.name == "main"


def test_delete_needs_the_name_typed(client, cast):
    client.force_login(cast.alice)
    url = reverse("dashboard-space-delete", kwargs={"public_id": cast.space.public_id})
    assert "Type" in client.get(url).content.decode()
    response = client.post(url, {"confirm_name": "wrong"})
    assert response.status_code == 200
    assert Space.objects.filter(pk=cast.space.pk).exists()
    response = client.post(url, {"confirm_name": "main"})
    assert response["Location"] == reverse("dashboard-org", kwargs={"slug": cast.org.slug})
    assert not Space.objects.filter(pk=cast.space.pk).exists()


def test_pause_and_resume(client, cast):
    client.force_login(cast.alice)
    client.post(reverse("dashboard-space-pause", kwargs={"public_id": cast.space.public_id}))
    cast.space.refresh_from_db()
    assert cast.space.is_paused
    response = client.post(
        reverse("dashboard-space-resume", kwargs={"public_id": cast.space.public_id}),
        {"next": "//evil.example.com/"},
    )
    cast.space.refresh_from_db()
    assert not cast.space.is_paused
    assert response["Location"] == reverse(
        "dashboard-space", kwargs={"public_id": cast.space.public_id}
    )
