"""Django's PostgreSQL backend, with a connection pool whose health check costs a round trip
only when it can matter.

Django's pool (OPTIONS["pool"], psycopg_pool) checks every connection as it is handed out when
CONN_HEALTH_CHECKS is on: an empty query first, so that a connection broken by a database
restart is replaced before a request uses it. That is one round trip more on every request,
and on the one-statement worker calls it was a quarter of the request's time. A connection
that came back to the pool a moment ago worked a moment ago: this backend checks only those
idle for longer than CHECK_AFTER_IDLE_SECONDS, so a restarted server still costs no failed
request beyond the ones made while it was down.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

# A connection idle for longer than this is checked before it is handed out.
CHECK_AFTER_IDLE_SECONDS = 1.0

# The clock, injectable for tests.
clock = time.monotonic


def mark_returned(conn) -> None:
    """Stamp a connection as it goes back to the pool (DatabaseWrapper._close).

    Not the pool's `reset` hook: with one, psycopg_pool returns every connection through a
    worker thread, a hand-off per request.
    """
    conn._jobyard_returned_at = clock()


def check_if_idle(conn) -> None:
    """The pool's `check` hook: raises when a connection idle for a while no longer works."""
    returned = getattr(conn, "_jobyard_returned_at", None)
    if returned is None or clock() - returned > CHECK_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # psycopg_pool keeps its hook as _check; tests/ops/test_db_pool_checks.py fails if that
        # changes. Django sets it only when CONN_HEALTH_CHECKS is on.
        if pool is not None and pool._check is not None and pool._check is not check_if_idle:
            pool._check = check_if_idle
        return pool

    def _close(self):
        if self.connection is not None and self.pool:
            mark_returned(self.connection)
        return super()._close()
