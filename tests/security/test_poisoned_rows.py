"""A stored row never breaks a read: rows written before input was checked read back repaired
(lib/jsonsafe.SafeJSONField), and the data migrations jobs/0005 and schedules/0002 repair them
for good."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job, JobLog
from schedules.models import Schedule
from spaces import scopes
from tests.factories import issue_key

# JSON texts as SQLite held them when a client sent them (Django writes JSON with ensure_ascii).
# NaN never got that far: SQLite's JSON_VALID check refused it at the write.
POISON = {
    "surrogate": ('{"s": "x\\udfffy"}', {"s": "x\ufffdy"}),
    "surrogate key": ('{"\\ud800k": 1}', {"\ufffdk": 1}),
    "NUL": ('{"s": "a\\u0000b"}', {"s": "ab"}),
}
# Values that look suspicious to the quick scan but are fine: left exactly as they are.
FINE = {
    "emoji": "\U0001f600",
    "words": "NaN and Infinity",
    "pair": "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16"),
}

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="PostgreSQL's jsonb refuses lone surrogates, NUL and NaN: no such row can exist there",
)


def set_raw(table: str, column: str, pk, text: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "{column}" = %s WHERE id = %s', [text, pk])  # noqa: S608


def get_raw(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])  # noqa: S608
        return cursor.fetchone()[0]


@sqlite_only
@pytest.mark.parametrize("kind", sorted(POISON))
def test_a_poisoned_row_reads_repaired_on_every_surface(cast, kind):
    text, expected = POISON[kind]
    space = cast.space
    job, _ = services.create_job(space, {"name": "poisoned", "payload": {"fine": 1}})
    set_raw("jobs_job", "payload", job.id, text)
    set_raw("jobs_job", "result", job.id, text)

    assert Job.objects.get(pk=job.id).payload == expected
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, sorted(scopes.ALL))}")
    detail = api.get(f"/api/v1/jobs/{job.id}")
    assert detail.status_code == 200 and detail.json()["payload"] == expected
    listing = api.get(f"/api/v1/spaces/{space.public_id}/jobs")
    assert listing.status_code == 200
    assert listing.json()[0]["result"] == expected

    browser = APIClient()
    browser.force_login(cast.alice)
    assert browser.get(f"/spaces/{space.public_id}/").status_code == 200
    page = browser.get(f"/spaces/{space.public_id}/jobs/{job.id}")
    assert page.status_code == 200
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    browser.force_login(staff)
    assert browser.get(f"/admin/jobs/job/{job.id}/change/").status_code == 200
    assert browser.get("/admin/jobs/job/").status_code == 200


@sqlite_only
def test_values_that_only_look_suspicious_read_back_as_they_are(space):
    job, _ = services.create_job(space, {"name": "fine", "payload": FINE})
    assert Job.objects.get(pk=job.id).payload == FINE


@pytest.mark.django_db(transaction=True)
def test_the_migrations_repair_stored_rows_and_keep_the_rest():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    # spaces stays at its last migration, so the rows below are written to the tables it has.
    before = [
        ("jobs", "0004_encrypt_stored_secrets"),
        ("schedules", "0001_initial"),
        ("spaces", "0004_channels_moved_to_notifications"),
    ]
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        org = old.get_model("orgs", "Organization").objects.create(name="Org", slug="org")
        space = old.get_model("spaces", "Space").objects.create(organization_id=org.pk, name="s")
        Job = old.get_model("jobs", "Job")  # noqa: N806
        fine = Job.objects.create(space_id=space.pk, name="fine", payload=FINE)
        late = Job.objects.create(
            space_id=space.pk,
            name="late",
            scheduled_for=datetime(9999, 12, 31, 23, tzinfo=UTC),
            available_at=datetime(9999, 12, 31, 23, tzinfo=UTC),
            status="scheduled",
        )
        logged = Job.objects.create(space_id=space.pk, name="logged")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO jobs_joblog (job_id, seq, level, message, timestamp, attributes, "
                "attempt_number) VALUES (%s, 1, 'info', 'old', %s, '{}', 1)",
                [
                    logged.pk,
                    "0001-01-01 00:00:00+01:00"
                    if connection.vendor != "sqlite"
                    else "0001-01-01 00:00:00",
                ],
            )
        poisoned = []
        schedule = old.get_model("schedules", "Schedule").objects.create(
            space_id=space.pk, name="nightly", cron="@daily", job_template={"name": "n"}
        )
        if connection.vendor == "sqlite":
            for text, _ in POISON.values():
                job = Job.objects.create(space_id=space.pk, name="poisoned")
                set_raw("jobs_job", "payload", job.pk, text)
                poisoned.append(job.pk)
            set_raw(
                "schedules_schedule",
                "job_template",
                schedule.pk,
                '{"name": "n", "payload": {"v": "\\udfff"}}',
            )

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)

        for pk, (_, expected) in zip(poisoned, POISON.values(), strict=bool(poisoned)):
            assert json.loads(get_raw("jobs_job", "payload", pk)) == expected
        assert Job.objects.get(pk=fine.pk).payload == FINE
        late_row = Job.objects.get(pk=late.pk)
        assert late_row.scheduled_for == datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert late_row.available_at == late_row.scheduled_for
        assert JobLog.objects.get(job_id=logged.pk).timestamp == datetime(1970, 1, 1, tzinfo=UTC)
        template = Schedule.objects.get(pk=schedule.pk).job_template
        if connection.vendor == "sqlite":
            assert json.loads(get_raw("schedules_schedule", "job_template", schedule.pk)) == {
                "name": "n",
                "payload": {"v": "\ufffd"},
            }
        else:
            assert template == {"name": "n"}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
