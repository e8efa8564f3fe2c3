"""Per-key rate limit: API_RATE_LIMIT_PER_SECOND requests per one-second window.

With REDIS_URL the count is shared by every web process through Redis (a counter per key and
second), but a request does not pay a Redis round trip of its own: each process counts its
hits locally and adds them to the shared counter in batches (INCRBY), at the first hit of a
key in each second, whenever SYNC_FRACTION of the limit has gathered, and on every hit once
the count is within one batch of the limit. Far from the limit that is one round trip per
key and second plus one per batch; near it, exact. A key can go over its limit by at most a
batch per web process (1 at limits under 20, where every hit is sent). If Redis is
unreachable the limit fails open to the in-process counter rather than refusing traffic.
Without Redis (the embedded default) the counter is in-process.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_windows: dict[int, tuple[int, int]] = {}  # key id -> (second, count)
_redis_client = None
_redis_down_until = 0.0


def _local_hit(key_id: int, second: int) -> int:
    with _lock:
        window, count = _windows.get(key_id, (second, 0))
        if window != second:
            count = 0
            if len(_windows) > 100_000:  # keys idle for a second are dropped
                _windows.clear()
        count += 1
        _windows[key_id] = (second, count)
        return count


def _redis_hit(key_id: int, second: int, hits: int = 1) -> int | None:
    global _redis_client, _redis_down_until
    if time.monotonic() < _redis_down_until:
        return None
    try:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2
            )
        name = f"jobyard:rl:{key_id}:{second}"
        pipe = _redis_client.pipeline()
        pipe.incrby(name, hits)
        pipe.expire(name, 2)
        count, _ = pipe.execute()
        return int(count)
    except Exception as exc:
        # Fail open, and don't retry Redis on every request while it is away.
        _redis_down_until = time.monotonic() + 5
        log.warning("rate limit: Redis unavailable, using the local counter: %r", exc)
        return None


# The share of the limit a process counts locally before adding it to the shared counter.
SYNC_FRACTION = 0.05
_shared: dict[int, list[int]] = {}  # key id -> [second, unsent hits, shared count last seen]


def _shared_hit(key_id: int, second: int, limit: int) -> int | None:
    """Count one hit; the key's count this second across processes, or None (Redis away)."""
    batch = max(1, int(limit * SYNC_FRACTION))
    with _lock:
        entry = _shared.get(key_id)
        first = entry is None or entry[0] != second
        if first:
            if len(_shared) > 100_000:  # keys idle for a second are dropped
                _shared.clear()
            entry = [second, 0, 0]
            _shared[key_id] = entry
        entry[1] += 1
        estimate = entry[2] + entry[1]
        if not first and entry[1] < batch and estimate + batch <= limit:
            return estimate
        unsent, entry[1] = entry[1], 0
    total = _redis_hit(key_id, second, unsent)
    with _lock:
        if total is None:
            entry[1] += unsent  # kept for when Redis is back; the local counter decides now
            return None
        entry[2] = max(entry[2], total)
        return entry[2] + entry[1]


def check(key_id: int) -> float | None:
    """Count one request for KEY_ID; the seconds to wait when over the limit, else None."""
    limit = settings.API_RATE_LIMIT_PER_SECOND
    if limit <= 0:
        return None
    now = time.time()
    second = int(now)
    count = None
    if settings.REDIS_URL:
        count = _shared_hit(key_id, second, limit)
    if count is None:
        count = _local_hit(key_id, second)
    if count > limit:
        return max(second + 1 - now, 0.001)
    return None
