"""Searching by error text covers every job, not only the newest SEARCH_WINDOW; on PostgreSQL
through the trigram index (migration 0007)."""

from __future__ import annotations

import pytest
from django.db import connection

from jobs import queries
from jobs.models import Job


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 5)


def make(space, n, **fields):
    fields = {"name": "x"} | fields
    return Job.objects.bulk_create([Job(space=space, **fields) for _ in range(n)])


def test_an_old_jobs_error_is_found_past_the_window(space, small_window):
    (old,) = make(space, 1, status="dead", last_error="Disk FULL on /dev/sda1")
    make(space, 20)  # newer jobs: the window never reaches the old one
    page = queries.job_page(space, limit=10, text="disk full")
    assert [job.id for job in page.jobs] == [old.id]
    assert page.older is None or page.older <= old.id


def test_a_name_match_in_the_window_and_an_old_error_share_a_page(space, small_window):
    (old,) = make(space, 1, last_error="boom")
    make(space, 20)
    (named,) = make(space, 1, name="boom.job")
    page = queries.job_page(space, limit=10, text="boom")
    assert [job.id for job in page.jobs] == [named.id, old.id]


def test_error_matches_page_by_id_without_repeats(space, small_window):
    make(space, 7, last_error="Timeout after 30s")
    make(space, 10)
    seen, before = [], ""
    for _ in range(5):
        page = queries.job_page(space, limit=3, text="timeout", before=before)
        seen += [job.id for job in page.jobs]
        if not page.older:
            break
        before = page.older
    assert len(seen) == len(set(seen)) == 7


def test_postgres_answers_an_error_search_from_the_trigram_index(space):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite scans with LIKE (docs/dashboard.md)")
    make(space, 50, last_error="something else")
    qs = Job.objects.filter(last_error__icontains="disk full")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_last_error_trgm_idx" in plan
