"""Forms report every problem at once, not the next one after each fix."""

from __future__ import annotations

from django.urls import reverse

from notifications.models import SpaceChannels


def _space_url(name, cast):
    return reverse(name, kwargs={"public_id": cast.space.public_id})


def test_the_token_form_reports_the_name_and_the_scopes_together(client, cast):
    client.force_login(cast.alice)
    form = client.post(_space_url("dashboard-tokens", cast), {"name": ""}).context["form"]
    assert "name" in form.errors
    assert any("Pick at least one scope" in e for e in form.non_field_errors())


def test_the_limit_form_reports_the_name_and_the_missing_caps_together(client, cast):
    client.force_login(cast.alice)
    response = client.post(_space_url("dashboard-limits", cast), {"name": "", "op": "set"})
    form = response.context["form"]
    assert "name" in form.errors
    assert any("Set a concurrency, a rate or both" in e for e in form.non_field_errors())


def test_the_limit_form_reports_each_bad_number(client, cast):
    client.force_login(cast.alice)
    data = {"name": "x", "concurrency": "0", "rate": "-1", "op": "set"}
    form = client.post(_space_url("dashboard-limits", cast), data).context["form"]
    assert set(form.errors) == {"concurrency", "rate"}


def test_the_push_form_reports_a_bad_url_with_bad_headers(client, cast):
    client.force_login(cast.alice)
    data = {"form": "push", "push_url": "ftp://example.com/x", "push_headers": "no colon"}
    form = client.post(_space_url("dashboard-settings", cast), data).context["push_form"]
    assert set(form.errors) == {"push_url", "push_headers"}
    assert not SpaceChannels.objects.filter(space_id=cast.space.pk, push_url__gt="").exists()


def test_the_slack_form_reports_a_bad_url_as_a_field_error(client, cast):
    client.force_login(cast.alice)
    data = {"form": "slack", "slack_webhook_url": "gopher://x", "slack_events": ["nope"]}
    form = client.post(_space_url("dashboard-settings", cast), data).context["slack_form"]
    assert set(form.errors) == {"slack_webhook_url", "slack_events"}


def test_the_invite_form_reports_both_fields(client, cast):
    client.force_login(cast.alice)
    url = reverse("dashboard-members", kwargs={"slug": cast.org.slug})
    form = client.post(url, {"invitee": "", "role": "emperor"}).context["form"]
    assert set(form.errors) == {"invitee", "role"}
