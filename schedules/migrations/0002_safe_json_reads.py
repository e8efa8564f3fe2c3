"""Reads of schedule templates that never break; rows stored before input was checked (SQLite
only) are repaired as jobs/0005 repairs job JSON."""

from django.db import migrations

import lib.jsonsafe


def repair(apps, schema_editor):
    table = apps.get_model("schedules", "Schedule")._meta.db_table
    lib.jsonsafe.repair_stored(schema_editor.connection, table, "job_template")


class Migration(migrations.Migration):
    dependencies = [
        ("schedules", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="schedule",
            name="job_template",
            field=lib.jsonsafe.SafeJSONField(default=dict),
        ),
        migrations.RunPython(repair, migrations.RunPython.noop, elidable=True),
    ]
