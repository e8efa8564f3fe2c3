"""API key authentication: `Authorization: Bearer emit_...` or `X-Api-Key: emit_...`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from . import keys
from .models import ApiKey

# last_used_at is written at most this often per key, so auth costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyUser:
    """Stands in for request.user on API requests: the caller is a key, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.pk = None
        self.username = f"key:{key.prefix}"

    def __str__(self) -> str:
        return self.username


class InvalidKey(exceptions.AuthenticationFailed):
    # One message for every failure (unknown prefix, wrong secret, revoked), so a caller
    # learns nothing about which part was wrong.
    default_detail = "Invalid or missing API key"
    default_code = "invalid_api_key"


def key_from_headers(meta: dict) -> str | None:
    auth = meta.get("HTTP_AUTHORIZATION", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = meta.get("HTTP_X_API_KEY", "").strip()
    return value or None


def resolve_key(clear: str) -> ApiKey | None:
    """The active key matching CLEAR, or None. Constant-time comparison of the digest."""
    if not keys.well_formed(clear):
        return None
    candidates = ApiKey.objects.select_related("space").filter(
        prefix=keys.lookup_prefix(clear), revoked_at__isnull=True
    )
    for candidate in candidates:
        if keys.matches(clear, candidate.digest):
            return candidate
    return None


def touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        clear = key_from_headers(request.META)
        if clear is None:
            return None
        key = resolve_key(clear)
        if key is None:
            raise InvalidKey()
        touch(key)
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="api"'
