"""Workers seen polling: who they are, when they were last seen.

A worker is named by the id it sends (`X-Worker-Id`, e.g. the Python client's hostname:pid) or,
without one, by its key (`key:<prefix>`). Poll and claim store that name on the jobs they hand
out (Job.worker_id, in the claiming statement itself) and note a sighting here.

The hot path must not pay a write per poll: a sighting is written at most once per
SIGHTING_EVERY seconds per worker and process (an in-process debounce), as one upsert. "Last
seen" is therefore exact to within SIGHTING_EVERY seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

SIGHTING_EVERY = 5.0
MAX_WORKER_ID = 200

_written: dict[tuple[int, str], datetime] = {}
_lock = threading.Lock()
# Bounded: a process that saw more distinct workers than this forgets the oldest notes (and
# writes their next sighting at once).
_MAX_REMEMBERED = 10_000


def worker_name(worker_id: str | None, key_prefix: str) -> str:
    """The name a worker goes by: its own id, else its key's."""
    return worker_id or f"key:{key_prefix}"


def valid_worker_id(value: str) -> bool:
    """At most MAX_WORKER_ID printable characters (no control characters), not blank."""
    return 0 < len(value) <= MAX_WORKER_ID and value.isprintable() and bool(value.strip())


@dataclass(frozen=True)
class Sighting:
    """A sighting due to be written (the debounce let it through)."""

    space_id: int
    worker_id: str
    key_id: int | None
    at: datetime


# One statement on both databases. Poll on PostgreSQL runs it as a CTE of its own statement
# (jobs/services.py), so a poll stays one round trip even when a sighting is due.
UPSERT_SQL = (
    "INSERT INTO jobs_workersighting (space_id, worker_id, key_id, first_seen_at, last_seen_at) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (space_id, worker_id) DO UPDATE "
    "SET last_seen_at = excluded.last_seen_at, key_id = excluded.key_id"
)


def upsert_params(sighting: Sighting) -> list:
    return [sighting.space_id, sighting.worker_id, sighting.key_id, sighting.at, sighting.at]


def due(
    space_id: int, worker: str, key_id: int | None, now: datetime | None = None
) -> Sighting | None:
    """The sighting of WORKER polling SPACE now, when one is due (none written by this process
    in the last SIGHTING_EVERY seconds); the caller writes it (`write`, or in its statement)."""
    now = now or timezone.now()
    mark = (space_id, worker)
    with _lock:
        last = _written.get(mark)
        if last is not None and now - last < timedelta(seconds=SIGHTING_EVERY) and now >= last:
            return None
        if len(_written) >= _MAX_REMEMBERED:
            _written.clear()
        _written[mark] = now
    return Sighting(space_id=space_id, worker_id=worker, key_id=key_id, at=now)


def write(sighting: Sighting) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SQL, upsert_params(sighting))


def seen(space_id: int, worker: str, key_id: int | None, now: datetime | None = None) -> bool:
    """Note that WORKER polled SPACE now; True when a row was written (not debounced)."""
    sighting = due(space_id, worker, key_id, now)
    if sighting is None:
        return False
    write(sighting)
    return True


def forget() -> None:
    """Drop the debounce notes (tests)."""
    with _lock:
        _written.clear()
