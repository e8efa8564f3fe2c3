"""Pooled PostgreSQL connections are checked on checkout only after a second idle
(lib/postgres): no round trip more on every request, and a restart still costs no request."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from lib.postgres import base as backend


class FakeConnection:
    pass


@pytest.fixture
def now(monkeypatch) -> list[float]:
    clock = [1000.0]
    monkeypatch.setattr(backend, "clock", lambda: clock[0])
    return clock


@pytest.fixture
def checks(monkeypatch) -> list[FakeConnection]:
    seen: list[FakeConnection] = []
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(seen.append))
    return seen


def test_a_connection_back_a_moment_ago_is_handed_out_unchecked(checks, now):
    conn = FakeConnection()
    backend.mark_returned(conn)
    now[0] += backend.CHECK_AFTER_IDLE_SECONDS / 2
    backend.check_if_idle(conn)
    assert checks == []


def test_a_connection_idle_past_the_limit_is_checked(checks, now):
    conn = FakeConnection()
    backend.mark_returned(conn)
    now[0] += backend.CHECK_AFTER_IDLE_SECONDS + 0.5
    backend.check_if_idle(conn)
    assert checks == [conn]


def test_a_connection_never_returned_is_checked(checks, now):
    conn = FakeConnection()
    backend.check_if_idle(conn)
    assert checks == [conn]


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_pool_checks_with_the_idle_rule():
    from django.db import connection

    pool = connection.pool
    assert pool is not None
    assert pool._check is backend.check_if_idle


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_while_idle_is_replaced_before_a_request_uses_it(monkeypatch):
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    connection.close()  # back to the pool
    raw.pgconn.finish()  # as a database restart would leave it
    raw._jobyard_returned_at -= backend.CHECK_AFTER_IDLE_SECONDS + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.connection is not raw
