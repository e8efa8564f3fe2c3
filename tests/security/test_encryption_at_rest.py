"""Secrets at rest (lib/crypto.py, lib/fields.py): stored encrypted, read in clear, rotated
with a new key first, rows written before encryption migrated in place."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs import services
from jobs.models import Job
from lib import crypto
from notifications.models import SpaceChannels
from tests.factories import SpaceFactory

SLACK_URL = "https://hooks.slack.com/services/T1/B2/sEcReTtOkEn"
CHANNELS = "notifications_spacechannels"  # one row per space, keyed by space_id


def raw(table: str, column: str, pk) -> str:
    key = "space_id" if table == CHANNELS else "id"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {key} = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def channels_of(space) -> SpaceChannels:
    return SpaceChannels.objects.get(pk=space.pk)


def make_secrets() -> tuple[object, Job]:
    space = SpaceFactory(slack_webhook_url=SLACK_URL, push_headers={"Authorization": "Bearer hv"})
    job = services.create_jobs(
        space,
        [
            {
                "name": "a",
                "callback_url": "https://cb.example.com",
                "callback_headers": {"X-T": "cv"},
            }
        ],
    )[0][0]
    return space, job


@pytest.fixture
def stored(db):
    return make_secrets()


def test_secrets_are_stored_encrypted_and_read_back_in_clear(stored):
    space, job = stored
    for column in ("slack_webhook_url", "push_headers", "push_secret"):
        value = raw(CHANNELS, column, space.pk)
        assert value.startswith(crypto.PREFIX), column
    assert "sEcReTtOkEn" not in raw(CHANNELS, "slack_webhook_url", space.pk)
    assert raw("jobs_job", "callback_headers", job.id).startswith(crypto.PREFIX)

    channels = channels_of(space)
    assert channels.slack_webhook_url == SLACK_URL
    assert channels.push_headers == {"Authorization": "Bearer hv"}
    assert channels.push_secret.startswith("whsec_")
    assert Job.objects.get(pk=job.id).callback_headers == {"X-T": "cv"}


def test_empty_values_stay_empty_so_is_set_checks_still_work(db):
    space = SpaceFactory()
    SpaceChannels.of(space)  # nothing configured
    assert raw(CHANNELS, "slack_webhook_url", space.pk) == ""
    assert raw(CHANNELS, "push_headers", space.pk) == ""
    assert SpaceChannels.objects.filter(pk=space.pk).exclude(slack_webhook_url="").count() == 0
    assert channels_of(space).push_headers == {}


def test_two_encryptions_of_one_value_differ(db):
    assert crypto.encrypt("same") != crypto.encrypt("same")
    assert crypto.decrypt(crypto.encrypt("same")) == "same"


def test_a_new_key_first_still_reads_old_values_and_reencrypt_moves_them(db, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["old-key-" + "x" * 40]
    space, job = make_secrets()  # written under the old key
    under_old = raw(CHANNELS, "slack_webhook_url", space.pk)

    settings.FIELD_ENCRYPTION_KEYS = ["new-key-" + "y" * 40, "old-key-" + "x" * 40]
    assert channels_of(space).slack_webhook_url == SLACK_URL
    assert crypto.needs_rotation(under_old)

    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert "notifications.SpaceChannels: 1 rows re-encrypted" in out.getvalue()
    assert "jobs.Job: 1 rows re-encrypted" in out.getvalue()
    after = raw(CHANNELS, "slack_webhook_url", space.pk)
    assert after != under_old and not crypto.needs_rotation(after)
    assert not crypto.needs_rotation(raw("jobs_job", "callback_headers", job.id))

    settings.FIELD_ENCRYPTION_KEYS = ["new-key-" + "y" * 40]  # the old key dropped
    assert channels_of(space).slack_webhook_url == SLACK_URL
    assert Job.objects.get(pk=job.id).callback_headers == {"X-T": "cv"}


def test_a_value_no_key_opens_reads_empty_and_logs_instead_of_failing(stored, settings, caplog):
    space, job = stored
    settings.FIELD_ENCRYPTION_KEYS = ["some-other-key-" + "z" * 40]
    with caplog.at_level(logging.ERROR, logger="jobyard.crypto"):
        channels = channels_of(space)
        job = Job.objects.get(pk=job.id)
    assert channels.slack_webhook_url == "" and channels.push_headers == {}
    assert job.callback_headers == {}
    assert "cannot be decrypted" in caplog.text and "SlackWebhookUrl" not in caplog.text
    assert "SpaceChannels.slack_webhook_url" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_rows_written_in_clear_and_reverses():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    before = [("spaces", "0001_initial"), ("jobs", "0002_name_limits")]
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        org = old.get_model("orgs", "Organization").objects.create(name="Org", slug="org")
        space = old.get_model("spaces", "Space").objects.create(
            organization_id=org.pk,
            name="legacy",
            slack_webhook_url=SLACK_URL,
            push_headers={"Authorization": "Bearer legacy"},
            push_secret="whsec_legacy",
        )
        job = old.get_model("jobs", "Job").objects.create(
            space_id=space.pk, name="a", callback_headers={"X-T": "legacy"}
        )
        empty = old.get_model("jobs", "Job").objects.create(space_id=space.pk, name="b")
        assert raw("spaces_space", "slack_webhook_url", space.pk) == SLACK_URL

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
        for column in ("slack_webhook_url", "push_headers", "push_secret"):
            assert raw(CHANNELS, column, space.pk).startswith(crypto.PREFIX), column
        assert raw("jobs_job", "callback_headers", job.pk).startswith(crypto.PREFIX)
        assert raw("jobs_job", "callback_headers", empty.pk) == ""
        fresh = channels_of(space)
        assert (fresh.slack_webhook_url, fresh.push_secret) == (SLACK_URL, "whsec_legacy")
        assert fresh.push_headers == {"Authorization": "Bearer legacy"}
        assert Job.objects.get(pk=job.pk).callback_headers == {"X-T": "legacy"}

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert raw("spaces_space", "slack_webhook_url", space.pk) == SLACK_URL
        assert json.loads(raw("jobs_job", "callback_headers", job.pk)) == {"X-T": "legacy"}
        assert json.loads(raw("jobs_job", "callback_headers", empty.pk)) == {}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)


# --- the old built-in key: decrypt only --------------------------------------------------------


def under_the_old_built_in_key(text: str) -> str:
    """TEXT as an install on the embedded default stored it before install keys existed."""
    return crypto.PREFIX + crypto._derive(crypto.LEGACY_DEFAULT_KEY).encrypt(text.encode()).decode()


def opens_with_the_old_built_in_key(stored: str) -> bool:
    from cryptography.fernet import InvalidToken

    try:
        crypto._derive(crypto.LEGACY_DEFAULT_KEY).decrypt(stored[len(crypto.PREFIX) :].encode())
    except InvalidToken:
        return False
    return True


def test_values_under_the_old_built_in_key_are_read_and_reencrypt_moves_them(db, caplog):
    space = SpaceFactory()
    SpaceChannels.of(space)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CHANNELS} SET slack_webhook_url = %s WHERE space_id = %s",  # noqa: S608
            [under_the_old_built_in_key(SLACK_URL), space.pk],
        )
    before = raw(CHANNELS, "slack_webhook_url", space.pk)
    crypto._warn_legacy.cache_clear()

    with caplog.at_level(logging.WARNING, logger="jobyard.crypto"):
        assert channels_of(space).slack_webhook_url == SLACK_URL
        assert channels_of(space).slack_webhook_url == SLACK_URL
    warnings = [r for r in caplog.records if r.name == "jobyard.crypto"]
    assert len(warnings) == 1 and "reencrypt_secrets" in warnings[0].getMessage()
    assert crypto.needs_rotation(before)

    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115

    after = raw(CHANNELS, "slack_webhook_url", space.pk)
    assert after != before and not crypto.needs_rotation(after)
    assert not opens_with_the_old_built_in_key(after)
    assert channels_of(space).slack_webhook_url == SLACK_URL


@pytest.mark.parametrize(
    "keys",
    [
        {"SECRET_KEY": "s" * 60, "FIELD_ENCRYPTION_KEYS": []},
        {"SECRET_KEY": "s" * 60, "SECRET_KEY_FALLBACKS": ["f" * 60], "FIELD_ENCRYPTION_KEYS": []},
        {"SECRET_KEY": "s" * 60, "FIELD_ENCRYPTION_KEYS": ["k" * 60, "old" * 20]},
    ],
    ids=["secret-key", "with-fallbacks", "field-keys"],
)
def test_no_configuration_encrypts_with_the_old_built_in_key(db, settings, keys):
    for name, value in keys.items():
        setattr(settings, name, value)

    assert crypto.LEGACY_DEFAULT_KEY not in crypto._keys()
    stored = crypto.encrypt("a secret")
    assert not opens_with_the_old_built_in_key(stored)
    assert crypto.decrypt(stored) == "a secret"
    space = SpaceFactory(slack_webhook_url=SLACK_URL)
    assert not opens_with_the_old_built_in_key(raw(CHANNELS, "slack_webhook_url", space.pk))


def test_with_no_key_at_all_nothing_is_encrypted(settings):
    """No key configured is an error, never a fall back to the old built-in key."""
    from django.core.exceptions import ImproperlyConfigured

    settings.SECRET_KEY = ""
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("a secret")


def test_reencrypt_issues_each_spaces_public_progress_key_after_a_new_secret_key(db, settings):
    from spaces.auth import resolve_key

    space = SpaceFactory()
    old_public = space.public_progress_key
    settings.SECRET_KEY = "a-new-secret-key-" + "n" * 50
    new_public = space.public_progress_key
    assert new_public != old_public and resolve_key(new_public) is None

    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)

    assert "1 public progress keys issued" in out.getvalue()
    issued = resolve_key(new_public)
    assert (issued.space_id, issued.is_public, issued.scopes) == (
        space.pk,
        True,
        ["jobs:read:progress"],
    )
    assert resolve_key(old_public) is not None  # pages that embed the old one keep working
    again = io.StringIO()
    call_command("reencrypt_secrets", stdout=again)
    assert "0 public progress keys issued" in again.getvalue()
