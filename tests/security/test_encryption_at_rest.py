"""Secrets at rest (lib/crypto.py, lib/fields.py): stored encrypted, read in clear, rotated
with a new key first, rows written before encryption migrated in place."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs import services
from jobs.models import Job
from lib import crypto
from spaces.models import Space
from tests.factories import SpaceFactory

SLACK_URL = "https://hooks.slack.com/services/T1/B2/sEcReTtOkEn"


def raw(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def make_secrets() -> tuple[Space, Job]:
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
        value = raw("spaces_space", column, space.pk)
        assert value.startswith(crypto.PREFIX), column
    assert "sEcReTtOkEn" not in raw("spaces_space", "slack_webhook_url", space.pk)
    assert raw("jobs_job", "callback_headers", job.id).startswith(crypto.PREFIX)

    space = Space.objects.get(pk=space.pk)
    assert space.slack_webhook_url == SLACK_URL
    assert space.push_headers == {"Authorization": "Bearer hv"}
    assert space.push_secret.startswith("whsec_")
    assert Job.objects.get(pk=job.id).callback_headers == {"X-T": "cv"}


def test_empty_values_stay_empty_so_is_set_checks_still_work(db):
    space = SpaceFactory()
    assert raw("spaces_space", "slack_webhook_url", space.pk) == ""
    assert raw("spaces_space", "push_headers", space.pk) == ""
    assert Space.objects.filter(pk=space.pk).exclude(slack_webhook_url="").count() == 0
    assert Space.objects.get(pk=space.pk).push_headers == {}


def test_two_encryptions_of_one_value_differ(db):
    assert crypto.encrypt("same") != crypto.encrypt("same")
    assert crypto.decrypt(crypto.encrypt("same")) == "same"


def test_a_new_key_first_still_reads_old_values_and_reencrypt_moves_them(db, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["old-key-" + "x" * 40]
    space, job = make_secrets()  # written under the old key
    under_old = raw("spaces_space", "slack_webhook_url", space.pk)

    settings.FIELD_ENCRYPTION_KEYS = ["new-key-" + "y" * 40, "old-key-" + "x" * 40]
    assert Space.objects.get(pk=space.pk).slack_webhook_url == SLACK_URL
    assert crypto.needs_rotation(under_old)

    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115
    after = raw("spaces_space", "slack_webhook_url", space.pk)
    assert after != under_old and not crypto.needs_rotation(after)
    assert not crypto.needs_rotation(raw("jobs_job", "callback_headers", job.id))

    settings.FIELD_ENCRYPTION_KEYS = ["new-key-" + "y" * 40]  # the old key dropped
    assert Space.objects.get(pk=space.pk).slack_webhook_url == SLACK_URL
    assert Job.objects.get(pk=job.id).callback_headers == {"X-T": "cv"}


def test_a_value_no_key_opens_reads_empty_and_logs_instead_of_failing(stored, settings, caplog):
    space, job = stored
    settings.FIELD_ENCRYPTION_KEYS = ["some-other-key-" + "z" * 40]
    with caplog.at_level(logging.ERROR, logger="jobyard.crypto"):
        space = Space.objects.get(pk=space.pk)
        job = Job.objects.get(pk=job.id)
    assert space.slack_webhook_url == "" and space.push_headers == {}
    assert job.callback_headers == {}
    assert "cannot be decrypted" in caplog.text and "SlackWebhookUrl" not in caplog.text
    assert "Space.slack_webhook_url" in caplog.text


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
            assert raw("spaces_space", column, space.pk).startswith(crypto.PREFIX), column
        assert raw("jobs_job", "callback_headers", job.pk).startswith(crypto.PREFIX)
        assert raw("jobs_job", "callback_headers", empty.pk) == ""
        fresh = Space.objects.get(pk=space.pk)
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
