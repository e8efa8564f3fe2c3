"""Re-encrypt every secret stored in the database with the first key of FIELD_ENCRYPTION_KEYS.

After a key rotation (new key first, old keys after it, or a new SECRET_KEY with the old one in
SECRET_KEY_FALLBACKS), run this once; then the old key can be dropped from the settings. It
also moves values still under the old built-in key of the embedded default (public, kept by
lib/crypto.py to decrypt only) to the current key.

A new SECRET_KEY also changes each space's public progress key (derived from it, see
spaces/keys.py): this command gives every space a key row for its current public key, so the
key the dashboard shows works. The row of the previous public key is kept, so pages that embed
it keep working.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser

from lib import crypto
from lib.fields import EncryptedJSONField, EncryptedTextField
from spaces import keys, scopes
from spaces.models import ApiKey, Space


def encrypted_tables() -> list[tuple[type, list[str]]]:
    """(model, its encrypted fields) for every installed model that has some, whichever app
    owns it (jobs' callback headers, notifications' channel settings ...)."""
    tables = []
    for model in apps.get_models():
        fields = [
            field.name
            for field in model._meta.concrete_fields
            if isinstance(field, EncryptedTextField | EncryptedJSONField)
        ]
        if fields:
            tables.append((model, fields))
    return tables


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the newest key (after a key rotation)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=1000, help="rows per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        for model, fields in encrypted_tables():
            done = self.reencrypt(model, fields, options["batch"])
            self.stdout.write(f"{model._meta.label}: {done} rows re-encrypted")
        issued = self.issue_public_keys()
        self.stdout.write(f"spaces.ApiKey: {issued} public progress keys issued")

    def reencrypt(self, model, fields: list[str], batch: int) -> int:
        """Rows whose raw stored value is clear text or under an older key are saved again."""
        from django.db import connection, transaction

        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        pk = quote(model._meta.pk.column)
        columns = ", ".join(quote(model._meta.get_field(f).column) for f in fields)
        first = f"SELECT {pk}, {columns} FROM {table} ORDER BY {pk} LIMIT %s"  # noqa: S608
        after = f"SELECT {pk}, {columns} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s"  # noqa: S608
        done, last = 0, None
        while True:
            with connection.cursor() as cursor:
                if last is None:
                    cursor.execute(first, [batch])
                else:
                    cursor.execute(after, [last, batch])
                rows = cursor.fetchall()
            if not rows:
                return done
            stale = [
                pk for pk, *values in rows if any(crypto.needs_rotation(v or "") for v in values)
            ]
            with transaction.atomic():
                for obj in (
                    model.objects.select_for_update().filter(pk__in=stale).only("pk", *fields)
                ):
                    obj.save(update_fields=fields)
                    done += 1
            last = rows[-1][0]

    def issue_public_keys(self) -> int:
        """A key row for each space's current public progress key that has none (a revoked
        row counts: a key revoked on purpose is not brought back)."""
        issued = 0
        for space in Space.objects.only("pk", "public_id").iterator():
            clear = space.public_progress_key
            digest = keys.digest(clear)
            if ApiKey.objects.filter(digest=digest).exists():
                continue
            ApiKey.objects.create(
                space=space,
                name="Public progress key",
                scopes=scopes.PUBLIC_PROGRESS,
                prefix=keys.lookup_prefix(clear),
                digest=digest,
                is_public=True,
            )
            issued += 1
        return issued
