from __future__ import annotations

from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications import breaker
from notifications.models import NotificationDelivery, SpaceChannels
from tests.factories import stored_channels

SLACK = "https://hooks.slack.com/services/T0/B0/SECRET"


def _url(cast):
    return reverse("dashboard-settings", kwargs={"public_id": cast.space.public_id})


def _set_channels(cast, **fields) -> None:
    SpaceChannels.objects.update_or_create(space_id=cast.space.pk, defaults=fields)


def test_the_slack_form_saves_url_and_events_and_turns_slack_back_on(client, cast):
    _set_channels(cast, slack_disabled_at=timezone.now(), slack_last_error="404 no_service")
    client.force_login(cast.alice)
    response = client.post(
        _url(cast),
        {"form": "slack", "slack_webhook_url": SLACK, "slack_events": ["dead", "failed"]},
    )
    assert response.status_code == 302
    channels = stored_channels(cast.space)
    assert channels.slack_webhook_url == SLACK
    assert sorted(channels.slack_events) == ["dead", "failed"]
    assert channels.slack_disabled_at is None
    assert channels.slack_last_error == ""


def test_the_slack_form_rejects_a_non_http_url(client, cast):
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"form": "slack", "slack_webhook_url": "ftp://x/y"})
    assert response.status_code == 200
    assert "must be an http or https URL" in response.content.decode()


def test_saving_one_form_leaves_the_other_alone(client, cast):
    _set_channels(cast, push_url="https://w.example.com/wake")
    client.force_login(cast.alice)
    client.post(_url(cast), {"form": "slack", "slack_webhook_url": SLACK})
    assert stored_channels(cast.space).push_url == "https://w.example.com/wake"


def test_the_push_form_saves_headers_and_names(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        _url(cast),
        {
            "form": "push",
            "push_url": "https://w.example.com/wake",
            "push_headers": "Authorization: Bearer abc\nX-Team: data",
            "push_names": "email.send, report.build\nemail.send",
        },
    )
    assert response.status_code == 302
    channels = stored_channels(cast.space)
    assert channels.push_headers == {"Authorization": "Bearer abc", "X-Team": "data"}
    assert channels.push_names == ["email.send", "report.build"]


@pytest.mark.parametrize(
    "headers", ["no colon here", "X-Bad Name: v", "Host: example.com", "X-Jobyard-Sig: x"]
)
def test_the_push_form_rejects_bad_headers(client, cast, headers):
    client.force_login(cast.alice)
    response = client.post(
        _url(cast), {"form": "push", "push_url": "https://w.example.com/", "push_headers": headers}
    )
    assert response.status_code == 200
    assert stored_channels(cast.space).push_url == ""


def test_the_page_shows_the_signing_secret_and_recent_deliveries(client, cast):
    NotificationDelivery.objects.create(
        space=cast.space,
        channel="slack",
        event="dead",
        target_host="hooks.slack.com",
        success=False,
        status_code=500,
        error="upstream down",
    )
    client.force_login(cast.alice)
    html = client.get(_url(cast)).content.decode()
    assert stored_channels(cast.space).push_secret in html  # behind the copy and show buttons
    assert "upstream down" in html
    assert "hooks.slack.com" in html


def test_an_unknown_form_is_rejected(client, cast):
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"form": "nope"})
    assert response.status_code == 302


def test_the_test_buttons_need_a_saved_url(client, cast):
    client.force_login(cast.alice)
    url = reverse("dashboard-test-slack", kwargs={"public_id": cast.space.public_id})
    response = client.post(url, follow=True)
    assert "Save a URL" in response.content.decode()


@pytest.mark.parametrize(
    ("kind", "func"), [("slack", "send_test_slack"), ("push", "send_test_push")]
)
def test_the_test_buttons_call_the_notification_senders(client, cast, kind, func):
    from notifications import services

    _set_channels(cast, slack_webhook_url=SLACK, push_url="https://w.example.com/wake")
    client.force_login(cast.alice)
    with mock.patch.object(services, func, autospec=True) as sender:
        sender.return_value = NotificationDelivery(
            space=cast.space, channel=kind, event="test", success=True, status_code=200
        )
        response = client.post(
            reverse(f"dashboard-test-{kind}", kwargs={"public_id": cast.space.public_id}),
            follow=True,
        )
    assert sender.call_count == 1
    assert sender.call_args.args[0] == cast.space
    assert "sent" in response.content.decode()


def test_private_addresses_are_refused_by_the_notification_rules(client, cast, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"form": "push", "push_url": "http://127.0.0.1:9/wake"})
    assert response.status_code == 200
    assert "not allowed" in response.content.decode()
    assert stored_channels(cast.space).push_url == ""


def test_rotating_the_signing_secret(client, cast):
    old = SpaceChannels.of(cast.space).push_secret
    client.force_login(cast.alice)
    client.post(reverse("dashboard-rotate-secret", kwargs={"public_id": cast.space.public_id}))
    new = stored_channels(cast.space).push_secret
    assert new != old
    assert new.startswith("whsec_")


def test_a_failed_test_send_shows_the_reason(client, cast):
    from notifications import services

    _set_channels(cast, push_url="https://w.example.com/wake")
    client.force_login(cast.alice)
    with mock.patch.object(services, "send_test_push", autospec=True) as sender:
        sender.return_value = NotificationDelivery(
            space=cast.space, channel="push", event="test", success=False, error="connect timeout"
        )
        response = client.post(
            reverse("dashboard-test-push", kwargs={"public_id": cast.space.public_id}), follow=True
        )
    assert "Test push failed: connect timeout" in response.content.decode()


def test_the_page_shows_endpoints_whose_notifications_wait(client, cast):
    breaker.trip(cast.space.pk, "slack", "hooks.slack.com", "timed out after 15 s")
    breaker.trip(cast.space.pk, "slack", "hooks.slack.com", "timed out after 15 s")
    client.force_login(cast.alice)

    html = client.get(_url(cast)).content.decode()

    assert "Paused endpoints" in html
    assert "hooks.slack.com" in html and "2 times in a row" in html
    assert "timed out after 15 s" in html

    breaker.succeeded(cast.space.pk, "slack", "hooks.slack.com")
    assert "Paused endpoints" not in client.get(_url(cast)).content.decode()
