from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from config.exceptions import http_status
from lib.errors import DomainError
from notifications import services
from notifications.models import NotificationDelivery
from tests.factories import SpaceFactory


@pytest.fixture
def space(db, httpserver):
    return SpaceFactory(
        name="billing",
        slack_webhook_url=httpserver.url_for("/slack"),
        push_url=httpserver.url_for("/push"),
        push_headers={"X-Token": "t"},
    )


def test_send_test_slack_posts_now_and_records_the_delivery(space, httpserver):
    httpserver.expect_request("/slack").respond_with_data("ok")

    delivery = services.send_test_slack(space)

    assert delivery.success and delivery.channel == "slack" and delivery.event == "test"
    assert delivery.job is None
    body = json.loads(httpserver.log[0][0].data)
    assert "Test message" in body["text"] and "billing" in body["text"]


def test_send_test_push_is_signed_and_not_retried(space, httpserver):
    httpserver.expect_request("/push").respond_with_data("down", status=503)

    delivery = services.send_test_push(space)

    assert not delivery.success and delivery.status_code == 503
    assert NotificationDelivery.objects.count() == 1
    (request, _) = httpserver.log[0]
    body = json.loads(request.data)
    assert body["type"] == "test" and body["spaceId"] == space.public_id
    digest = hmac.new(
        space.channels.push_secret.encode(), request.get_data(), hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Jobyard-Signature"] == f"sha256={digest}"
    assert request.headers["X-Token"] == "t"
    space.refresh_from_db()
    assert space.channels.push_last_error == ""  # a test leaves the channel state alone


def test_a_failing_test_message_does_not_disable_slack(space, httpserver):
    httpserver.expect_request("/slack").respond_with_data("no_service", status=404)

    delivery = services.send_test_slack(space)

    assert not delivery.success
    space.refresh_from_db()
    assert space.channels.slack_disabled_at is None


def test_a_test_works_while_the_channel_is_disabled(space, httpserver):
    from django.utils import timezone

    space.channels.slack_disabled_at = timezone.now()
    space.channels.save()
    httpserver.expect_request("/slack").respond_with_data("ok")

    assert services.send_test_slack(space).success


def test_test_sends_need_a_url(db):
    space = SpaceFactory()
    with pytest.raises(DomainError) as caught:
        services.send_test_push(space)
    assert http_status(caught.value) == 400 and caught.value.code == "not_configured"


def test_settings_errors_are_api_errors_per_field(space):
    before = (space.channels.push_url, space.channels.push_headers, space.channels.push_names)
    with pytest.raises(services.SettingsError) as caught:
        services.update_push(
            space, url="gopher://x", headers={"Host": "x"}, names=[""] * 0 + ["a" * 201]
        )
    assert http_status(caught.value) == 400
    assert set(caught.value.details) == {"push_url", "push_headers", "push_names"}
    space.refresh_from_db()
    assert (
        space.channels.push_url,
        space.channels.push_headers,
        space.channels.push_names,
    ) == before


def test_recent_deliveries_lists_newest_first(space, httpserver):
    httpserver.expect_request("/slack").respond_with_data("ok")
    httpserver.expect_request("/push").respond_with_data("ok")
    first = services.send_test_slack(space)
    second = services.send_test_push(space)
    assert list(services.recent_deliveries(space)) == [second, first]
