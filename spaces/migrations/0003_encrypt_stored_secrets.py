"""Encrypts the secrets stored in clear before 0002_secrets_encrypted_at_rest, in place; the
reverse decrypts them. Its own migration, so the rows are written in a transaction of their own
(PostgreSQL refuses to ALTER a table with pending trigger events in the same transaction)."""

from django.db import migrations

from lib import crypto

COLUMNS = [("slack_webhook_url", False), ("push_headers", True), ("push_secret", False)]


def encrypt(apps, schema_editor):
    for column, is_json in COLUMNS:
        crypto.encrypt_column(schema_editor, "spaces_space", column, is_json=is_json)


def decrypt(apps, schema_editor):
    for column, is_json in COLUMNS:
        crypto.decrypt_column(schema_editor, "spaces_space", column, is_json=is_json)


class Migration(migrations.Migration):
    dependencies = [
        ("spaces", "0002_secrets_encrypted_at_rest"),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt, elidable=True),
    ]
