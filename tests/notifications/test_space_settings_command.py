from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from notifications.models import SpaceChannels
from tests.factories import OrganizationFactory, SpaceFactory, stored_channels


def run(*args: str) -> str:
    out = StringIO()
    call_command("space_settings", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def space(db):
    return SpaceFactory(name="billing")


def test_it_sets_slack_and_push_by_space_name(space):
    run(
        "--space", "billing",
        "--slack-url", "https://hooks.slack.com/services/T0/B0/XYZ",
        "--slack-events", "failed,dead",
        "--push-url", "https://workers.example.com/wake",
        "--push-header", "Authorization: Bearer abc",
        "--push-header", "X-Pool:gpu",
        "--push-names", "thumbs.make, video.encode",
    )  # fmt: skip

    channels = stored_channels(space)
    assert channels.slack_webhook_url == "https://hooks.slack.com/services/T0/B0/XYZ"
    assert channels.slack_events == ["failed", "dead"]
    assert channels.push_url == "https://workers.example.com/wake"
    assert channels.push_headers == {"Authorization": "Bearer abc", "X-Pool": "gpu"}
    assert channels.push_names == ["thumbs.make", "video.encode"]


def test_the_output_never_shows_secrets(space):
    out = run(
        "--space", space.public_id,
        "--slack-url", "https://hooks.slack.com/services/T0/B0/XYZ",
        "--push-url", "https://workers.example.com/wake?key=k3y",
        "--push-header", "Authorization: Bearer abc",
    )  # fmt: skip

    assert "XYZ" not in out and "k3y" not in out and "Bearer abc" not in out
    assert "https://hooks.slack.com/…" in out and "Authorization" in out
    assert stored_channels(space).push_secret not in out


def test_an_empty_url_turns_a_channel_off(space):
    run(
        "--space",
        "billing",
        "--slack-url",
        "https://hooks.slack.com/x",
        "--push-url",
        "https://w.example.com/",
    )
    run("--space", "billing", "--slack-url", "", "--push-url", "")

    channels = stored_channels(space)
    assert channels.slack_webhook_url == "" and channels.push_url == ""


def test_saving_the_slack_url_re_enables_a_disabled_channel(space):
    SpaceChannels.objects.create(
        space=space,
        slack_webhook_url="https://hooks.slack.com/x",
        slack_disabled_at=timezone.now(),
        slack_last_error="HTTP 404: no_service",
    )

    run("--space", "billing", "--slack-events", "dead")
    assert stored_channels(space).slack_disabled_at is not None  # events alone keep it disabled

    report = json.loads(
        run("--space", "billing", "--slack-url", "https://hooks.slack.com/x", "--json")
    )
    assert report["slack"]["disabledAt"] is None and report["slack"]["lastError"] is None
    assert report["slack"]["events"] == ["dead"]


def test_a_new_slack_url_defaults_to_failure_events(space):
    run("--space", "billing", "--slack-url", "https://hooks.slack.com/x")
    assert stored_channels(space).slack_events == ["failed", "dead"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slack-url", "ftp://x/"], "slack_webhook_url: must be an http or https URL"),
        (["--slack-events", "failed,exploded"], "unknown events: exploded"),
        (["--push-header", "X-A: b\r\nHost: evil"], "push_headers"),
        (["--push-header", "Host: evil.example"], "controlled by Jobyard"),
        (["--push-header", "no-colon"], "Name:value"),
        (["--push-url", "https://user:pw@example.com/"], "user name or password"),
    ],
)
def test_invalid_values_are_rejected_and_nothing_changes(space, args, message):
    with pytest.raises(CommandError, match=message):
        run("--space", "billing", *args)
    channels = stored_channels(space)
    assert channels.slack_webhook_url == "" and channels.push_headers == {}


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_private_targets_are_rejected(space):
    with pytest.raises(CommandError, match="not allowed"):
        run("--space", "billing", "--push-url", "http://169.254.169.254/latest")
    assert stored_channels(space).push_url == ""


def test_an_ambiguous_name_needs_the_org(db):
    first = SpaceFactory(name="main", organization=OrganizationFactory(slug="acme"))
    second = SpaceFactory(name="main")
    with pytest.raises(CommandError, match="Several spaces"):
        run("--space", "main", "--push-url", "https://w.example.com/")
    assert stored_channels(first).push_url == ""
    run("--space", "main", "--org", "acme", "--push-url", "https://w.example.com/")
    assert stored_channels(first).push_url == "https://w.example.com/"
    assert stored_channels(second).push_url == ""


def test_rotating_the_push_secret_prints_the_new_one(space):
    old = SpaceChannels.of(space).push_secret
    report = json.loads(run("--space", "billing", "--rotate-push-secret", "--json"))
    new = stored_channels(space).push_secret
    assert new != old and report["push"]["secret"] == new
    assert report["changed"] == ["push secret"]


def test_test_flags_send_now(space, httpserver):
    httpserver.expect_request("/slack").respond_with_data("ok")
    httpserver.expect_request("/push").respond_with_data("nope", status=500)
    report = json.loads(
        run(
            "--space",
            "billing",
            "--slack-url",
            httpserver.url_for("/slack"),
            "--push-url",
            httpserver.url_for("/push"),
            "--test-slack",
            "--test-push",
            "--json",
        )  # fmt: skip
    )
    assert report["tests"] == {"Slack test": "ok", "Push test": "failed (HTTP 500: nope)"}
    assert len(httpserver.log) == 2  # no retry for tests
    # The URLs given were saved before the tests went to them.
    channels = stored_channels(space)
    assert channels.slack_webhook_url == httpserver.url_for("/slack")
    assert channels.push_url == httpserver.url_for("/push")


def test_test_without_a_url_is_an_error(space):
    with pytest.raises(CommandError, match="Set a Slack webhook URL first"):
        run("--space", "billing", "--test-slack")
