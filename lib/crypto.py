"""Secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256) from the cryptography package.

Stored values look like ``enc1:<fernet token>``. The keys come from FIELD_ENCRYPTION_KEYS (any
strings, newest first) or, when that is empty, from SECRET_KEY then SECRET_KEY_FALLBACKS; each
string goes through HKDF-SHA256 to a Fernet key. The first key encrypts, every key decrypts, so a
key is rotated by putting the new one first and running `manage.py reencrypt_secrets`.

A value without the prefix was written before encryption existed and is read as it stands; the
next save encrypts it.
"""

from __future__ import annotations

import base64
import functools
import json
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "enc1:"

logger = logging.getLogger("jobyard.crypto")


class DecryptionError(Exception):
    """No configured key opens the value (a key was changed without keeping the old one)."""


def _derive(secret: str) -> Fernet:
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jobyard-secrets-at-rest", info=b"fernet"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


@functools.lru_cache(maxsize=8)
def _fernet(secrets: tuple[str, ...]) -> MultiFernet:
    if not secrets or not all(secrets):
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS (or SECRET_KEY) must not be empty")
    return MultiFernet([_derive(secret) for secret in secrets])


def _keys() -> tuple[str, ...]:
    configured = tuple(getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) or ())
    if configured:
        return configured
    return (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(text: str) -> str:
    return PREFIX + _fernet(_keys()).encrypt(text.encode()).decode("ascii")


def decrypt(value: str) -> str:
    """The clear text of VALUE; a value stored before encryption is returned unchanged."""
    if not is_encrypted(value):
        return value
    try:
        return _fernet(_keys()).decrypt(value[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(
            "a stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS / SECRET_KEY "
            "(was the key changed without keeping the old one?)"
        ) from exc


def needs_rotation(value: str) -> bool:
    """True when VALUE is clear text or was encrypted with a key other than the first."""
    if not value:
        return False
    if not is_encrypted(value):
        return True
    token = value[len(PREFIX) :].encode("ascii")
    try:
        _derive(_keys()[0]).decrypt(token)
    except InvalidToken:
        return True
    return False


def _rewrite_column(schema_editor, table: str, column: str, change, *, first_pk=0) -> None:
    """Apply CHANGE to every non-empty value of TABLE.COLUMN, in primary-key order, in batches
    (FIRST_PK sorts before every key: 0 for integers, "" for strings)."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    select = (
        f"SELECT id, {quote(column)} FROM {quote(table)} "  # noqa: S608 (names, not input)
        f"WHERE id > %s AND {quote(column)} <> '' ORDER BY id LIMIT 1000"
    )
    update = f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE id = %s"  # noqa: S608
    last = first_pk
    with connection.cursor() as cursor:
        while True:
            cursor.execute(select, [last])
            rows = cursor.fetchall()
            if not rows:
                return
            changes = [(change(value), pk) for pk, value in rows]
            cursor.executemany(update, [(new, pk) for new, pk in changes])
            last = rows[-1][0]


def encrypt_column(schema_editor, table: str, column: str, *, is_json: bool, first_pk=0) -> None:
    """Migration helper: encrypt the clear values of a column (an empty JSON value becomes '')."""

    def change(value: str) -> str:
        if is_encrypted(value):
            return value
        if is_json:
            data = json.loads(value)
            if data in ({}, []):
                return ""
            value = json.dumps(data, sort_keys=True)
        return encrypt(value)

    _rewrite_column(schema_editor, table, column, change, first_pk=first_pk)


def decrypt_column(schema_editor, table: str, column: str, *, is_json: bool, first_pk=0) -> None:
    """Migration helper, the reverse of encrypt_column."""

    def change(value: str) -> str:
        return decrypt(value)

    _rewrite_column(schema_editor, table, column, change, first_pk=first_pk)
    if is_json:
        quote = schema_editor.connection.ops.quote_name
        with schema_editor.connection.cursor() as cursor:
            empty = f"UPDATE {quote(table)} SET {quote(column)} = '{{}}' WHERE {quote(column)} = ''"  # noqa: S608
            cursor.execute(empty)
