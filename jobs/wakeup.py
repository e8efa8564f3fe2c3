"""Wake long polls as soon as a job becomes pending.

A long poll (`waitSeconds`) never holds a database connection while it waits: it sleeps on a
condition variable here, woken at once when this process commits a job that became pending,
and re-checks the database on a short interval anyway (jobs that became pending in another
process: the scheduler, another web instance). With REDIS_URL set, a pending job in any process
is also announced over Redis pub/sub, and a listener thread relays it to the local waiters.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)

CHANNEL = "jobyard:pending"

_cond = threading.Condition()
_generation: dict[int, int] = {}
_listener_started = False
_listener_lock = threading.Lock()


def generation(space_id: int) -> int:
    with _cond:
        return _generation.get(space_id, 0)


def _bump(space_id: int) -> None:
    with _cond:
        _generation[space_id] = _generation.get(space_id, 0) + 1
        _cond.notify_all()


def notify(space_ids) -> None:
    """Called after commit when jobs of SPACE_IDS became pending."""
    space_ids = set(space_ids)
    for space_id in space_ids:
        _bump(space_id)
    global _redis_down_until
    if settings.REDIS_URL and space_ids and time.monotonic() >= _redis_down_until:
        try:
            client = _redis()
            for space_id in space_ids:
                client.publish(CHANNEL, str(space_id))
        except Exception as exc:  # Redis down: local waiters were woken, others re-check the DB
            # Don't make every create wait for a Redis timeout while it is away.
            _redis_down_until = time.monotonic() + 5
            log.debug("pending wakeup publish failed: %r", exc)


def wait(space_id: int, seen: int, timeout: float) -> None:
    """Sleep until SPACE_ID's generation moves past SEEN or TIMEOUT seconds pass."""
    _ensure_listener()
    deadline = time.monotonic() + timeout
    with _cond:
        while _generation.get(space_id, 0) == seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _cond.wait(left)


_client = None
_redis_down_until = 0.0


def _redis():
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.3, socket_timeout=0.3
        )
    return _client


def _ensure_listener() -> None:
    global _listener_started
    if not settings.REDIS_URL or _listener_started:
        return
    with _listener_lock:
        if _listener_started:
            return
        _listener_started = True
        threading.Thread(target=_listen, name="jobyard-wakeup", daemon=True).start()


def _listen() -> None:
    import redis

    while True:
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)
            for message in pubsub.listen():
                try:
                    space_id = int(message["data"])
                except (TypeError, ValueError):
                    continue
                with _cond:
                    _generation[space_id] = _generation.get(space_id, 0) + 1
                    _cond.notify_all()
        except Exception as exc:  # reconnect after a pause; polls keep re-checking the DB
            log.debug("pending wakeup listener: %r", exc)
            time.sleep(2)
