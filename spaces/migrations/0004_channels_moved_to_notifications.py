"""The notification channel settings are notifications.SpaceChannels now: the columns go, once
notifications 0005 has copied them (the reverse adds them back before it copies them back)."""

from django.db import migrations

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


class Migration(migrations.Migration):
    dependencies = [
        ("spaces", "0003_encrypt_stored_secrets"),
        ("notifications", "0005_copy_space_channels"),
    ]

    operations = [migrations.RemoveField(model_name="space", name=name) for name in COLUMNS]
