"""Space secrets encrypted at rest (lib/crypto.py): the Slack webhook URL, the push header
values and the push signing secret. The columns become text and the existing values are
encrypted in place by the next migration."""

from django.db import migrations

import lib.fields
import spaces.models


class Migration(migrations.Migration):
    dependencies = [
        ("spaces", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="space",
            name="push_headers",
            field=lib.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="space",
            name="push_secret",
            field=lib.fields.EncryptedTextField(default=spaces.models.new_push_secret, editable=False),
        ),
        migrations.AlterField(
            model_name="space",
            name="slack_webhook_url",
            field=lib.fields.EncryptedTextField(blank=True, default=""),
        ),
    ]
