"""Job.callback_headers encrypted at rest (lib/crypto.py): the column becomes text and the
existing values are encrypted in place by the next migration; an empty {} is stored as ''."""

from django.db import migrations

import lib.fields



class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_name_limits"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="callback_headers",
            field=lib.fields.EncryptedJSONField(blank=True, default=dict),
        ),
    ]
