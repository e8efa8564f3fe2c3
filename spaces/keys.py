"""API key format: `emit_` + a high-entropy secret.

Only a SHA-256 digest of the whole key is stored, beside a short prefix of the secret used to
find the row. SHA-256 (not a slow password hash) is right here because the secret carries 256
bits of entropy: there is nothing to brute-force.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.conf import settings

KEY_PREFIX = "emit_"
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)
LOOKUP_LENGTH = 10
KEY_LENGTH = len(KEY_PREFIX) + SECRET_LENGTH


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def lookup_prefix(key: str) -> str:
    """The part of a key stored in clear for lookup and display (`emit_AbCdEfGhIj`)."""
    return key[: len(KEY_PREFIX) + LOOKUP_LENGTH]


def well_formed(key: str) -> bool:
    """Cheap shape check, so junk never reaches the database."""
    return (
        len(key) == KEY_LENGTH
        and key.startswith(KEY_PREFIX)
        and all(c.isalnum() or c in "-_" for c in key[len(KEY_PREFIX) :])
    )


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)


def public_progress_key(space_public_id: str) -> str:
    """The public, progress-only key of a space.

    It is derived from SECRET_KEY and the space id, so the dashboard can show it at any time
    while the database still holds only its digest. It is meant to be embedded in web pages:
    it can read nothing but progress.
    """
    mac = hmac.new(
        settings.SECRET_KEY.encode(), f"public-progress:{space_public_id}".encode(), hashlib.sha256
    ).digest()
    secret = base64.urlsafe_b64encode(mac).decode().rstrip("=")[:SECRET_LENGTH]
    return KEY_PREFIX + secret
