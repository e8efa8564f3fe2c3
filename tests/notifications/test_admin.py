from __future__ import annotations

import pytest
from django.urls import reverse

from notifications import breaker
from notifications.models import (
    EndpointBreaker,
    NotificationDelivery,
    PendingNotification,
    SpaceChannels,
)
from tests.factories import SpaceFactory


@pytest.fixture
def rows(db):
    space = SpaceFactory(slack_webhook_url="https://hooks.slack.com/services/T/B/SECRETPART")
    delivery = NotificationDelivery.objects.create(
        space=space, channel="slack", event="failed", target_host="hooks.slack.com",
        status_code=500, error="HTTP 500: rollup_error", duration_ms=12,
    )  # fmt: skip
    pending = PendingNotification.objects.create(space=space, channel="slack", events=["dead"])
    return delivery, pending


def test_the_admin_lists_deliveries_and_the_outbox_read_only(admin_client, rows):
    delivery, pending = rows
    changelist = admin_client.get(reverse("admin:notifications_notificationdelivery_changelist"))
    assert changelist.status_code == 200
    assert b"hooks.slack.com" in changelist.content and b"SECRETPART" not in changelist.content

    detail = admin_client.get(
        reverse("admin:notifications_notificationdelivery_change", args=[delivery.pk])
    )
    assert detail.status_code == 200 and b"rollup_error" in detail.content

    outbox = admin_client.get(reverse("admin:notifications_pendingnotification_changelist"))
    assert outbox.status_code == 200
    add = admin_client.get(reverse("admin:notifications_pendingnotification_add"))
    assert add.status_code == 403

    # Read-only: a change posted anyway is refused and changes nothing.
    change = admin_client.post(
        reverse("admin:notifications_notificationdelivery_change", args=[delivery.pk]),
        {"error": "rewritten", "status_code": 200, "success": "on"},
    )
    assert change.status_code == 403
    delivery.refresh_from_db()
    assert (delivery.error, delivery.status_code, delivery.success) == (
        "HTTP 500: rollup_error",
        500,
        False,
    )
    assert PendingNotification.objects.filter(pk=pending.pk).exists()


def test_the_admin_filters_deliveries_by_space_and_channel(admin_client, rows):
    delivery, _ = rows
    url = reverse("admin:notifications_notificationdelivery_changelist")
    slack = admin_client.get(url, {"space__id__exact": delivery.space_id, "channel": "slack"})
    push = admin_client.get(url, {"space__id__exact": delivery.space_id, "channel": "push"})
    assert slack.context["cl"].result_count == 1
    assert push.context["cl"].result_count == 0


def test_an_operator_sees_open_breakers_and_can_close_one(admin_client, db):
    space = SpaceFactory()
    breaker.trip(space.pk, "slack", "hooks.example:8443", "timed out after 15 s")
    state = EndpointBreaker.objects.get()

    listing = admin_client.get(reverse("admin:notifications_endpointbreaker_changelist"))
    assert listing.status_code == 200
    assert b"hooks.example:8443" in listing.content and b"timed out after 15 s" in listing.content
    add = admin_client.get(reverse("admin:notifications_endpointbreaker_add"))
    assert add.status_code == 403

    admin_client.post(
        reverse("admin:notifications_endpointbreaker_delete", args=[state.pk]), {"post": "yes"}
    )
    assert not EndpointBreaker.objects.exists()
    assert breaker.admit(space.pk, "slack", "hooks.example:8443") == (None, False)


def test_the_admin_shows_each_spaces_channels_without_their_secrets(admin_client, db):
    space = SpaceFactory(
        slack_webhook_url="https://hooks.slack.com/services/T/B/SECRETPART",
        slack_last_error="HTTP 404: no_service",
        push_url="https://w.example.com/wake?key=PUSHKEY",
        push_headers={"Authorization": "Bearer HEADERVALUE"},
    )
    secret = space.channels.push_secret
    pages = [
        reverse("admin:notifications_spacechannels_changelist"),
        reverse("admin:notifications_spacechannels_change", args=[space.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200
        body = response.content.decode()
        assert "no_service" in body and space.name in body
        for hidden in ("SECRETPART", "PUSHKEY", "HEADERVALUE", secret):
            assert hidden not in body, (page, hidden)

    # Read-only, and never deleted from here (that would replace the signing secret).
    add = admin_client.get(reverse("admin:notifications_spacechannels_add"))
    delete = admin_client.post(
        reverse("admin:notifications_spacechannels_delete", args=[space.pk]), {"post": "yes"}
    )
    assert add.status_code == 403 and delete.status_code == 403
    assert SpaceChannels.objects.get(pk=space.pk).push_secret == secret
