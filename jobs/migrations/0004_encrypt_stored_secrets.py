"""Encrypts the secrets stored in clear before 0003_secrets_encrypted_at_rest, in place; the
reverse decrypts them. Its own migration, so the rows are written in a transaction of their own
(PostgreSQL refuses to ALTER a table with pending trigger events in the same transaction)."""

from django.db import migrations

from lib import crypto


def encrypt(apps, schema_editor):
    crypto.encrypt_column(schema_editor, "jobs_job", "callback_headers", is_json=True, first_pk="")


def decrypt(apps, schema_editor):
    crypto.decrypt_column(schema_editor, "jobs_job", "callback_headers", is_json=True, first_pk="")


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0003_secrets_encrypted_at_rest"),
    ]

    operations = [
        migrations.RunPython(encrypt, decrypt, elidable=True),
    ]
