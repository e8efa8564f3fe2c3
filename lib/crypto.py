"""Secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256) from the cryptography package.

Stored values look like ``enc1:<fernet token>``. The keys come from FIELD_ENCRYPTION_KEYS (any
strings, newest first) or, when that is empty, from SECRET_KEY then SECRET_KEY_FALLBACKS; each
string goes through HKDF-SHA256 to a Fernet key. The first key encrypts, every key decrypts, so a
key is rotated by putting the new one first and running `manage.py reencrypt_secrets`.

A value without the prefix was written before encryption existed and is read as it stands; the
next save encrypts it.

Without SECRET_KEY, the embedded default (config/settings/local.py) uses a random key made for
the install on its first run (`install_key`). Earlier versions used a fixed string from this
repository instead; values encrypted with it are still read (`LEGACY_DEFAULT_KEY`, decryption
only, with a warning) until `manage.py reencrypt_secrets` moves them to the current key.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "enc1:"

logger = logging.getLogger("jobyard.crypto")


# The SECRET_KEY every install on the embedded default had before install keys existed. It is
# public (it was in this repository), so it never encrypts: values under it are read, with a
# warning, and `manage.py reencrypt_secrets` moves them to the current key. Nothing else may
# use it (tests/security/test_install_key.py looks for it in the source).
LEGACY_DEFAULT_KEY = "insecure-local-only-key-change-me-in-production-0123456789"

# An install key is 64 URL-safe characters (48 random bytes); a key file with less is damaged.
INSTALL_KEY_MIN_LENGTH = 50


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
        token = value[len(PREFIX) :].encode("ascii")
    except UnicodeEncodeError as exc:
        raise DecryptionError("a stored secret is not a Fernet token") from exc
    try:
        return _fernet(_keys()).decrypt(token).decode()
    except (InvalidToken, ValueError):
        pass
    try:
        clear = _legacy_fernet().decrypt(token).decode()
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(
            "a stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS / SECRET_KEY "
            "(was the key changed without keeping the old one?)"
        ) from exc
    _warn_legacy()
    return clear


@functools.lru_cache(maxsize=1)
def _legacy_fernet() -> Fernet:
    return _derive(LEGACY_DEFAULT_KEY)


@functools.lru_cache(maxsize=1)
def _warn_legacy() -> None:
    """Once per process: secrets under the public key of earlier versions are still stored."""
    logger.warning(
        "stored secrets are still encrypted with the old built-in key, which is public: "
        "run `python manage.py reencrypt_secrets` to move them to the current key"
    )


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


# --- the install key -------------------------------------------------------------------------


def install_key(path: Path) -> str:
    """The key kept in PATH; on the first run, a new random one written there first.

    The file is created with mode 600 and its full content at once (written under a temporary
    name, then hard-linked to PATH, which fails if PATH exists): of processes starting together,
    one creates it and the others read that one. Any failure to create or read it stops the
    process (ImproperlyConfigured): there is no key to fall back to.
    """
    path = Path(path)
    try:
        return _read_install_key(path)
    except FileNotFoundError:
        pass
    try:
        _create_install_key(path)
    except FileExistsError:
        pass  # another process created it first: use that one
    except _NoHardLinks as exc:
        raise _key_file_error(
            path, f"cannot be created: {exc} (the file system must support hard links)"
        ) from exc
    except OSError as exc:
        raise _key_file_error(path, f"cannot be created: {exc.strerror or exc}") from exc
    try:
        return _read_install_key(path)
    except FileNotFoundError as exc:  # removed between the two steps
        raise _key_file_error(path, "disappeared while it was being created") from exc


def _read_install_key(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _key_file_error(path, f"cannot be read: {reason}") from exc
    key = text.strip()
    if len(key) < INSTALL_KEY_MIN_LENGTH or any(c.isspace() for c in key):
        raise _key_file_error(
            path,
            "holds no valid key: restore it from a backup (the secrets stored in the database "
            "were encrypted with it), or set SECRET_KEY",
        )
    return key


def _create_install_key(path: Path) -> None:
    key = secrets.token_urlsafe(48)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (key + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # atomic; FileExistsError when another process was first
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise _NoHardLinks(exc.strerror or str(exc)) from exc
            raise
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable: a key lost in a crash would leave the secrets unreadable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _NoHardLinks(OSError):
    pass


def _key_file_error(path: Path, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"SECRET_KEY is not set and the install key file {path} {problem}. Set SECRET_KEY "
        "(or SECRET_KEY_FILE), or let this process create and read that file in VAR_DIR."
    )
