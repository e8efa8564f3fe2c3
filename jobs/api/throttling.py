"""Per-key rate limit: API_RATE_LIMIT_PER_SECOND requests per one-second window.

With REDIS_URL the counter lives in Redis (INCR on a key per key and second), so every web
process shares it; if Redis is unreachable the limit fails open to the in-process counter
rather than refusing traffic. Without Redis (the embedded default) the counter is in-process.
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


def _redis_hit(key_id: int, second: int) -> int | None:
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
        pipe.incr(name)
        pipe.expire(name, 2)
        count, _ = pipe.execute()
        return int(count)
    except Exception as exc:
        # Fail open, and don't retry Redis on every request while it is away.
        _redis_down_until = time.monotonic() + 5
        log.warning("rate limit: Redis unavailable, using the local counter: %r", exc)
        return None


def check(key_id: int) -> float | None:
    """Count one request for KEY_ID; the seconds to wait when over the limit, else None."""
    limit = settings.API_RATE_LIMIT_PER_SECOND
    if limit <= 0:
        return None
    now = time.time()
    second = int(now)
    count = None
    if settings.REDIS_URL:
        count = _redis_hit(key_id, second)
    if count is None:
        count = _local_hit(key_id, second)
    if count > limit:
        return max(second + 1 - now, 0.001)
    return None
