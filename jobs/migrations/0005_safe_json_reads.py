"""Reads of client JSON that never break, and the repair of rows stored before input was checked.

- JSON columns (SQLite only: PostgreSQL's jsonb never held them): lone surrogates become U+FFFD,
  NUL is dropped, NaN and ±Infinity become null (lib/jsonsafe.py `repaired`).
- Timestamps a client sent outside the accepted range (1970-01-01 up to 9999-01-01, UTC) are
  moved to the nearest edge of it: a log line dated in year 1, a job scheduled for 9999-12-31.
  On PostgreSQL such a value could be stored but not read back.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations
from django.db.models import Case, Q, Value, When

import lib.jsonsafe

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
JSON_COLUMNS = {
    "Job": ["payload", "result", "progress"],
    "JobEvent": ["data"],
    "JobLog": ["attributes"],
}
TIMESTAMPS = {"Job": ["scheduled_for", "available_at"], "JobLog": ["timestamp"]}


def repair(apps, schema_editor):
    connection = schema_editor.connection
    for model_name, columns in JSON_COLUMNS.items():
        model = apps.get_model("jobs", model_name)
        for column in columns:
            lib.jsonsafe.repair_stored(connection, model._meta.db_table, column)
    for model_name, fields in TIMESTAMPS.items():
        model = apps.get_model("jobs", model_name)
        for field in fields:
            early, late = Q(**{f"{field}__lt": EARLIEST}), Q(**{f"{field}__gt": LAST})
            model.objects.filter(early | late).update(
                **{field: Case(When(early, then=Value(EARLIEST)), default=Value(LAST))}
            )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_encrypt_stored_secrets"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="payload",
            field=lib.jsonsafe.SafeJSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="job",
            name="progress",
            field=lib.jsonsafe.SafeJSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="job",
            name="result",
            field=lib.jsonsafe.SafeJSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="jobevent",
            name="data",
            field=lib.jsonsafe.SafeJSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="joblog",
            name="attributes",
            field=lib.jsonsafe.SafeJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(repair, migrations.RunPython.noop, elidable=True),
    ]
