"""Copies each space's notification channel settings from its own columns (spaces_space) into
its new SpaceChannels row; spaces 0004 then drops those columns.

The encrypted values (Slack URL, push headers, signing secret) are copied as stored, ciphertext
included, so no key is needed and every value stays under the key it was written with. The
reverse copies them back, gives a space that had no row a signing secret of its own, and
empties the table.
"""

import secrets

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


def _tables(apps, schema_editor):
    quote = schema_editor.quote_name
    spaces = quote(apps.get_model("spaces", "Space")._meta.db_table)
    channels = quote(apps.get_model("notifications", "SpaceChannels")._meta.db_table)
    return quote, spaces, channels


def copy_to_channels(apps, schema_editor):
    quote, spaces, channels = _tables(apps, schema_editor)
    columns = ", ".join(quote(column) for column in COLUMNS)
    schema_editor.execute(
        f"INSERT INTO {channels} ({quote('space_id')}, {columns}) "  # noqa: S608
        f"SELECT {quote('id')}, {columns} FROM {spaces}"
    )


def copy_back(apps, schema_editor):
    quote, spaces, channels = _tables(apps, schema_editor)
    values = ", ".join(
        f"{quote(column)} = (SELECT c.{quote(column)} FROM {channels} c "
        f"WHERE c.{quote('space_id')} = {spaces}.{quote('id')})"
        for column in COLUMNS
    )
    schema_editor.execute(
        f"UPDATE {spaces} SET {values} "  # noqa: S608
        f"WHERE {quote('id')} IN (SELECT {quote('space_id')} FROM {channels})"
    )
    # Re-adding the column gave every space the same default secret: spaces that had no row
    # get one of their own (encrypted by the field).
    Space = apps.get_model("spaces", "Space")
    SpaceChannels = apps.get_model("notifications", "SpaceChannels")
    without = Space.objects.exclude(pk__in=SpaceChannels.objects.values("pk"))
    for pk in without.values_list("pk", flat=True):
        Space.objects.filter(pk=pk).update(push_secret="whsec_" + secrets.token_urlsafe(32))
    schema_editor.execute(f"DELETE FROM {channels}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0004_spacechannels"),
        ("spaces", "0003_encrypt_stored_secrets"),
    ]

    operations = [
        migrations.RunPython(copy_to_channels, copy_back),
    ]
