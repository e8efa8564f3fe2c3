"""A space's notification channels live in their own row (notifications.SpaceChannels): made on
first use, read with the space in one query, moved there from the space's own columns by the
migrations, values encrypted at rest copied as they are stored."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from config.exceptions import http_status
from jobs.models import JobEvent
from lib import crypto
from lib.errors import DomainError
from notifications import outbox, services
from notifications.models import PendingNotification, SpaceChannels
from spaces import auth
from spaces.models import Space
from tests.factories import SpaceFactory, issue_key

SLACK_URL = "https://hooks.slack.com/services/T1/B2/sEcReTtOkEn"
COLUMNS = [
    "slack_webhook_url",
    "slack_events",
    "slack_last_error",
    "slack_disabled_at",
    "push_url",
    "push_headers",
    "push_names",
    "push_secret",
    "push_last_error",
]
ENCRYPTED = ["slack_webhook_url", "push_headers", "push_secret"]


def raw(table: str, column: str, key: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {key} = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


# --- a space without a row: nothing configured ---------------------------------------------------


def test_a_space_without_channels_plans_its_callbacks_only(db, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("ok")
    space = SpaceFactory()
    assert SpaceChannels.find(space) is None

    job = engine.create(space, callback_url=httpserver.url_for("/cb"))
    events = list(JobEvent.objects.filter(job=job))
    assert outbox.plan(events) == []  # created: no Slack, no push
    engine.kill(job)

    (request,) = [r for r, _ in httpserver.log]
    # The callback is signed with the secret of the row its first send made, and kept.
    secret = SpaceChannels.objects.get(pk=space.pk).push_secret
    digest = hmac.new(secret.encode(), request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-Jobyard-Signature"] == f"sha256={digest}"
    assert not PendingNotification.objects.exists()


def test_a_test_send_without_channels_needs_a_url(db):
    space = SpaceFactory()
    for send in (services.send_test_slack, services.send_test_push):
        with pytest.raises(DomainError) as caught:
            send(space)
        assert http_status(caught.value) == 400 and caught.value.code == "not_configured"


def test_the_command_shows_a_space_without_channels_as_all_off(db):
    space = SpaceFactory(name="bare")
    out = json.loads(_run("--space", "bare", "--json"))
    assert out["slack"] == {"url": "", "events": [], "disabledAt": None, "lastError": None}
    assert out["push"] == {"url": "", "headers": [], "names": [], "lastError": None}
    assert SpaceChannels.find(Space.objects.get(pk=space.pk)) is None  # showing made none


def _run(*args: str) -> str:
    import io

    out = io.StringIO()
    call_command("space_settings", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_first_setting_saved_makes_the_row_and_its_secret_stays(db):
    space = SpaceFactory()

    services.update_push(space, url="https://w.example.com/wake")
    secret = SpaceChannels.objects.get(pk=space.pk).push_secret
    services.update_slack(space, url=SLACK_URL)

    channels = SpaceChannels.objects.get(pk=space.pk)
    assert secret.startswith("whsec_") and channels.push_secret == secret
    assert (channels.push_url, channels.slack_webhook_url) == (
        "https://w.example.com/wake",
        SLACK_URL,
    )
    assert space.channels.slack_webhook_url == SLACK_URL  # the caller's space shows it too


def test_deleting_a_space_deletes_its_channels(db):
    space = SpaceFactory(push_url="https://w.example.com/wake")
    space.delete()
    assert not SpaceChannels.objects.exists()


# --- the planner: one query for many spaces, none for a space a key just loaded -------------


def _created(space, job_name: str = "a") -> JobEvent:
    from jobs import services as jobs

    job, _ = jobs.create_job(space, {"name": job_name})
    return JobEvent.objects.select_related("job").get(job=job, type="created")


def test_the_planner_reads_the_channels_of_many_spaces_in_one_query(db, django_assert_num_queries):
    slack = SpaceFactory(slack_webhook_url=SLACK_URL, slack_events=["created"])
    push = SpaceFactory(push_url="https://w.example.com/wake")
    bare = SpaceFactory()
    events = [_created(slack), _created(push), _created(bare)]
    auth.clear_cache()

    with django_assert_num_queries(1):
        rows = outbox.plan(events)

    assert sorted((r.space_id, r.channel) for r in rows) == [
        (slack.pk, "slack"),
        (push.pk, "push"),
    ]


@override_settings(API_KEY_CACHE_SECONDS=60)
def test_the_planner_uses_the_channels_loaded_with_a_key_without_a_query(
    db, django_assert_num_queries
):
    space = SpaceFactory(push_url="https://w.example.com/wake", push_names=["a"])
    key = issue_key(space)
    events = [_created(space, "a"), _created(space, "b")]
    auth.clear_cache()
    try:
        resolved = auth.resolve_key(key)
        assert resolved.space.channels.push_url == "https://w.example.com/wake"
        with django_assert_num_queries(0):
            rows = outbox.plan(events)
        assert [(r.channel, r.job_id) for r in rows] == [("push", events[0].job_id)]

        # Each request gets its own copy of the channels, as of the space.
        resolved.space.channels.push_url = ""
        assert auth.resolve_key(key).space.channels.push_url == "https://w.example.com/wake"
    finally:
        auth.clear_cache()


# --- the migrations: from the space's columns to the new table, and back ---------------------


@pytest.mark.django_db(transaction=True)
def test_the_migrations_move_the_channels_off_the_space_and_back():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    before = [("spaces", "0003_encrypt_stored_secrets"), ("notifications", "0003_endpointbreaker")]
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldSpace = old.get_model("spaces", "Space")
        org = old.get_model("orgs", "Organization").objects.create(name="Org", slug="org")
        disabled_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        configured = OldSpace.objects.create(
            organization_id=org.pk,
            name="configured",
            slack_webhook_url=SLACK_URL,
            slack_events=["failed", "dead"],
            slack_disabled_at=disabled_at,
            slack_last_error="HTTP 404: no_service",
            push_url="https://w.example.com/wake",
            push_headers={"Authorization": "Bearer hv"},
            push_names=["a", "b"],
            push_secret="whsec_kept",
            push_last_error="HTTP 502: down",
        )
        plain = OldSpace.objects.create(organization_id=org.pk, name="plain")
        stored = {c: raw("spaces_space", c, "id", configured.pk) for c in ENCRYPTED}
        assert all(value.startswith(crypto.PREFIX) for value in stored.values())
        plain_secret = OldSpace.objects.get(pk=plain.pk).push_secret

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)

        with connection.cursor() as cursor:
            table = connection.introspection.get_table_description(cursor, "spaces_space")
        assert not {column.name for column in table} & set(COLUMNS)
        # The ciphertext was copied as it was stored, and reads back in clear.
        moved = {
            c: raw("notifications_spacechannels", c, "space_id", configured.pk) for c in ENCRYPTED
        }
        assert moved == stored
        channels = SpaceChannels.objects.get(pk=configured.pk)
        assert (channels.slack_webhook_url, channels.slack_events) == (
            SLACK_URL,
            ["failed", "dead"],
        )
        assert channels.slack_disabled_at == disabled_at
        assert channels.slack_last_error == "HTTP 404: no_service"
        assert channels.push_url == "https://w.example.com/wake"
        assert channels.push_headers == {"Authorization": "Bearer hv"}
        assert (channels.push_names, channels.push_secret) == (["a", "b"], "whsec_kept")
        assert channels.push_last_error == "HTTP 502: down"
        untouched = SpaceChannels.objects.get(pk=plain.pk)
        assert untouched.push_secret == plain_secret and untouched.slack_webhook_url == ""
        assert untouched.push_url == "" and untouched.push_headers == {}
        # Spaces made after the move get no row until they need one.
        late = [
            Space.create(Space.objects.get(pk=plain.pk).organization, f"late{n}") for n in (1, 2)
        ]

        executor = MigrationExecutor(connection)
        executor.migrate(before)

        assert {c: raw("spaces_space", c, "id", configured.pk) for c in ENCRYPTED} == stored
        back = OldSpace.objects.get(pk=configured.pk)
        assert (back.slack_events, back.slack_disabled_at) == (["failed", "dead"], disabled_at)
        assert (back.push_names, back.push_last_error) == (["a", "b"], "HTTP 502: down")
        assert OldSpace.objects.get(pk=plain.pk).push_secret == plain_secret
        # Spaces that had no row get a secret each, not one shared default.
        secrets = {OldSpace.objects.get(pk=space.pk).push_secret for space in late}
        assert len(secrets) == 2 and all(s.startswith("whsec_") for s in secrets)
        assert plain_secret not in secrets
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
