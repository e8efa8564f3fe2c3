"""API key authentication: `Authorization: Bearer emit_...` or `X-Api-Key: emit_...`."""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.base import ModelState
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from . import keys
from .models import ApiKey, Space

log = logging.getLogger(__name__)

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
    """The active key matching CLEAR, or None. Constant-time comparison of the digest.

    Every API request authenticates, so a found key is kept in this process for
    API_KEY_CACHE_SECONDS (default 1 s) under the SHA-256 of the key: a revocation, a scope
    change or a change to the key's space (paused, notification settings) reaches every
    process within that time. Each request gets its own copy of the key and its space, so no
    request sees another's changes to them. Failed lookups are never cached.
    """
    if not keys.well_formed(clear):
        return None
    ttl = cache_seconds()
    if ttl <= 0:
        return _lookup(clear)
    digest = keys.digest(clear)
    now = time.monotonic()
    entry = _key_cache.get(digest)
    if entry is not None and entry[0] > now:
        return _copy_key(entry[1])
    key = _lookup(clear)
    if key is None:
        _key_cache.pop(digest, None)
        return None
    if len(_key_cache) > KEY_CACHE_MAX:  # many keys in turn: forget the expired ones
        for name, (expires, _) in list(_key_cache.items()):
            if expires <= now:
                _key_cache.pop(name, None)
    _key_cache[digest] = (now + ttl, key)
    _space_cache[key.space_id] = (now + ttl, key.space)
    return _copy_key(key)


def _lookup(clear: str) -> ApiKey | None:
    related = ["space", *(f"space__{name}" for name in space_related)]
    candidates = ApiKey.objects.select_related(*related).filter(
        prefix=keys.lookup_prefix(clear), revoked_at__isnull=True
    )
    for candidate in candidates:
        if keys.matches(clear, candidate.digest):
            return candidate
    return None


# digest of the clear key -> (monotonic expiry, key with its space loaded)
_key_cache: dict[str, tuple[float, ApiKey]] = {}
# space pk -> (monotonic expiry, the space as loaded with a key)
_space_cache: dict[int, tuple[float, Space]] = {}
KEY_CACHE_MAX = 10_000

# Rows other apps keep one-to-one beside a space, by related_name ("channels": the
# notification settings), added in their AppConfig.ready(). They are loaded with the key in
# the same query and cached with its space, so after-commit work on a recent space (the
# notification planner) needs no query of its own.
space_related: list[str] = []


def cache_seconds() -> float:
    return float(getattr(settings, "API_KEY_CACHE_SECONDS", 1.0))


def clear_cache() -> None:
    """Forget every cached key and space (tests; an operator's shell after a revocation)."""
    _key_cache.clear()
    _space_cache.clear()


def recent_space(space_pk: int) -> Space | None:
    """A copy of the space as an authentication loaded it less than API_KEY_CACHE_SECONDS
    ago, or None: for after-commit work that only needs the space's settings and may see
    them that late (the notification planner)."""
    entry = _space_cache.get(space_pk)
    if entry is None or entry[0] <= time.monotonic():
        return None
    return _copy_space(entry[1])


def _copy_model(obj):
    # A fresh instance with the same field values and no relation cache: cheaper than a query,
    # and changes a request makes to it stay in that request.
    copy = obj.__class__.__new__(obj.__class__)
    copy.__dict__.update(obj.__dict__)
    copy._state = ModelState()
    copy._state.adding = False
    copy._state.db = obj._state.db
    return copy


def _copy_space(space: Space) -> Space:
    """A copy of SPACE, with copies of the space_related rows loaded with it."""
    copy = _copy_model(space)
    for name in space_related:
        relation = Space._meta.get_field(name)
        if relation.is_cached(space):
            related = relation.get_cached_value(space)
            relation.set_cached_value(copy, None if related is None else _copy_model(related))
    return copy


def _copy_key(key: ApiKey) -> ApiKey:
    copy = _copy_model(key)
    copy.space = _copy_space(key.space)
    touched = _touched.get(key.pk)
    if touched is not None and (copy.last_used_at is None or touched > copy.last_used_at):
        copy.last_used_at = touched
    return copy


# key pk -> last_used_at this process wrote, so cached copies do not write it again.
_touched: dict[int, datetime] = {}


def touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        if len(_touched) > KEY_CACHE_MAX:
            _touched.clear()
        _touched[key.pk] = now


class FailureThrottle:
    """Counts failed key checks per client address; past the limit the address gets 429.

    AUTH_FAILURE_LIMIT failures within an AUTH_FAILURE_WINDOW-second fixed window block the
    address until the window ends (a fixed window: cheap, and at worst twice the limit across
    a window boundary). While blocked, every keyed request from it is refused
    BEFORE the key is checked, so a guesser cannot tell a hit from a miss.

    Cost for valid traffic: one dict lookup (the local block list). Failures are counted
    in-process and, with REDIS_URL, also in Redis (INCR on a per-address, per-window key), so
    every web process sees the total: a process learns of a block on the address's next
    failure there, which leaves a guesser at most one extra try per process and window.
    Redis errors fail open to the local count, and Redis is then left alone for a few seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # address -> (window, failures)
        self._blocked: dict[str, float] = {}  # address -> unblock time (time.time())
        self._redis = None
        self._redis_down_until = 0.0

    @staticmethod
    def limit() -> int:
        return int(getattr(settings, "AUTH_FAILURE_LIMIT", 20))

    @staticmethod
    def window() -> int:
        return max(1, int(getattr(settings, "AUTH_FAILURE_WINDOW", 60)))

    def retry_after(self, address: str) -> int | None:
        """Seconds until ADDRESS may try again, or None when it is not blocked."""
        until = self._blocked.get(address)
        if until is None:
            return None
        wait = until - time.time()
        if wait <= 0:
            with self._lock:
                self._blocked.pop(address, None)
            return None
        return max(1, math.ceil(wait))

    def failed(self, address: str) -> int | None:
        """Count one failure; when ADDRESS reaches the limit, block it and return the wait."""
        limit = self.limit()
        if limit <= 0 or not address:
            return None
        now = time.time()
        window = int(now // self.window())
        count = self._redis_failed(address, window) if settings.REDIS_URL else None
        local = self._local_failed(address, window)
        if count is None:
            count = local
        if count < limit:
            return None
        until = (window + 1) * self.window()
        with self._lock:
            if len(self._blocked) > 100_000:  # a flood of addresses: forget the expired ones
                self._blocked = {a: t for a, t in self._blocked.items() if t > now}
            self._blocked[address] = until
        return max(1, math.ceil(until - now))

    def _local_failed(self, address: str, window: int) -> int:
        with self._lock:
            seen, count = self._counts.get(address, (window, 0))
            if seen != window:
                count = 0
                if len(self._counts) > 100_000:
                    self._counts.clear()
            count += 1
            self._counts[address] = (window, count)
            return count

    def _redis_failed(self, address: str, window: int) -> int | None:
        if time.monotonic() < self._redis_down_until:
            return None
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(
                    settings.REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2
                )
            name = f"jobyard:authfail:{address}:{window}"
            pipe = self._redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, self.window() + 1)
            count, _ = pipe.execute()
            return int(count)
        except Exception as exc:
            self._redis_down_until = time.monotonic() + 5
            log.warning("auth throttle: Redis unavailable, counting locally: %r", exc)
            return None

    def reset(self) -> None:
        """Forget every count and block (tests)."""
        with self._lock:
            self._counts.clear()
            self._blocked.clear()


failures = FailureThrottle()


class AuthThrottled(exceptions.Throttled):
    # DRF's Throttled: the API's exception handler answers 429 with Retry-After.
    default_detail = "Too many failed authentication attempts"
    default_code = "auth_throttled"
    extra_detail_singular = "Retry after {wait} second."
    extra_detail_plural = "Retry after {wait} seconds."


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or ""


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        clear = key_from_headers(request.META)
        if clear is None:
            return None
        address = client_address(request)
        wait = failures.retry_after(address)
        if wait is not None:
            raise AuthThrottled(wait)
        key = resolve_key(clear)
        if key is None:
            # The failure that reaches the limit is still a plain 401; the block starts with
            # the next request, so every failure looks alike.
            failures.failed(address)
            raise InvalidKey()
        touch(key)
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="api"'
