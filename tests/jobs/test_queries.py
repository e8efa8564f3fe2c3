"""jobs/queries.py: the reads the API, the dashboard, the streams and the metrics share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import events, queries, services
from jobs.models import Job, JobEvent, JobLog
from spaces.models import Space
from tests.factories import JobFactory, SpaceFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def jobs(space) -> list[Job]:
    """Seven jobs, oldest first, alternately pending and dead, named a and b."""
    made = []
    for i in range(7):
        job, _ = services.create_job(
            space, {"name": "a" if i % 2 == 0 else "b", "payload": {"n": i}}
        )
        made.append(job)
    Job.objects.filter(pk__in=[j.pk for j in made[1::2]]).update(status="dead")
    return made


def ids(page) -> list[str]:
    return [job.id for job in page.jobs]


# --- job lists -------------------------------------------------------------------------------


def test_job_pages_walk_back_by_cursor_and_forward_again(space, jobs):
    newest_first = [j.id for j in reversed(jobs)]

    first = queries.job_page(space, limit=3)
    second = queries.job_page(space, limit=3, before=first.older)
    third = queries.job_page(space, limit=3, before=second.older)
    back = queries.job_page(space, limit=3, after=third.newer)

    assert ids(first) == newest_first[:3] and first.newer is None
    assert ids(second) == newest_first[3:6]
    assert ids(third) == newest_first[6:] and third.older is None
    assert ids(back) == newest_first[3:6]


def test_job_pages_filter_by_status_and_name_and_skip_by_offset(space, jobs):
    assert ids(queries.job_page(space, limit=10, statuses=["dead"])) == [
        jobs[5].id,
        jobs[3].id,
        jobs[1].id,
    ]
    assert len(queries.job_page(space, limit=10, statuses=["dead", "pending"]).jobs) == 7
    assert ids(queries.job_page(space, limit=10, name="a", offset=2)) == [jobs[2].id, jobs[0].id]
    # a status filter that names nothing matches nothing (the API's "status=,")
    assert queries.job_page(space, limit=10, statuses=[]).jobs == []


def test_a_job_page_is_one_query(space, jobs):
    with CaptureQueriesContext(connection) as queried:
        page = queries.job_page(space, limit=2, statuses=["pending"], name="a", offset=1)

    assert len(page.jobs) == 2 and page.older == page.jobs[-1].id
    assert len(queried.captured_queries) == 1


def test_text_search_finds_ids_names_and_payloads_in_its_window(space, jobs, monkeypatch):
    assert ids(queries.job_page(space, limit=10, text=jobs[2].id.lower())) == [jobs[2].id]
    assert ids(queries.job_page(space, limit=10, text='"n": 4')) == [jobs[4].id]
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 3)

    page = queries.job_page(space, limit=10, text='"n": 1')

    assert page.jobs == [] and page.older == jobs[4].id and page.notes
    assert ids(queries.job_page(space, limit=10, text='"n": 1', before=page.older)) == [jobs[1].id]


def test_jobs_matching_has_no_window(space, jobs, monkeypatch):
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 1)

    matching = queries.jobs_matching(space, statuses=["dead"], text='"n"')

    assert sorted(matching.values_list("id", flat=True)) == [jobs[1].id, jobs[3].id, jobs[5].id]


def test_job_lists_never_reach_other_spaces(space, jobs):
    other = JobFactory(name="a")

    assert other.id not in ids(queries.job_page(space, limit=100))
    assert queries.job_page(space, limit=10, text=other.id).jobs == []


# --- logs ------------------------------------------------------------------------------------


@pytest.fixture
def logged(space) -> Job:
    job, _ = services.create_job(space, {"name": "l"})
    JobLog.objects.bulk_create(
        JobLog(
            job=job,
            seq=i,
            level="error" if i % 4 == 0 else "info",
            message=f"line {i}",
            timestamp=T0,
        )
        for i in range(1, 11)
    )
    return job


def seqs(page) -> list[int]:
    rows, _ = page
    return [row.seq for row in rows]


def test_log_pages_forward_from_after(logged):
    assert queries.log_page(logged, limit=3, after=0)[1] is True
    assert seqs(queries.log_page(logged, limit=3, after=0)) == [1, 2, 3]
    assert seqs(queries.log_page(logged, limit=3, after=8)) == [9, 10]
    assert queries.log_page(logged, limit=3, after=8)[1] is False


def test_log_pages_back_from_the_newest_or_from_before(logged):
    assert seqs(queries.log_page(logged, limit=3)) == [8, 9, 10]
    assert seqs(queries.log_page(logged, limit=3, before=8)) == [5, 6, 7]
    # both: the window just below BEFORE, above AFTER (the API's paging back)
    assert seqs(queries.log_page(logged, limit=3, after=5, before=8)) == [6, 7]
    assert queries.log_page(logged, limit=3, after=5, before=8)[1] is False


def test_log_pages_filter_by_level_and_text(logged):
    assert seqs(queries.log_page(logged, limit=10, after=0, levels=["error"])) == [4, 8]
    assert seqs(queries.log_page(logged, limit=10, after=0, levels=["error", "info"])) == list(
        range(1, 11)
    )
    assert seqs(queries.log_page(logged, limit=10, after=0, levels=[])) == []
    assert seqs(queries.log_page(logged, limit=10, text="LINE 1")) == [1, 10]


# --- counts ----------------------------------------------------------------------------------


def test_stored_counts_are_known_only_when_complete():
    full = dict.fromkeys(queries.STATUSES, 0) | {"pending": 2}

    assert queries.stored_counts(full) == full
    assert queries.stored_counts(full | {"pending": "2"}) is None
    assert queries.stored_counts({"pending": 2}) is None
    assert queries.stored_counts({}) is None
    assert queries.stored_counts(None) is None
    assert queries.stored_counts([1, 2]) is None


def test_partial_stored_counts_read_missing_statuses_as_zero():
    assert queries.stored_counts({"running": 7}, partial=True) == dict.fromkeys(
        queries.STATUSES, 0
    ) | {"running": 7}
    assert queries.stored_counts({}, partial=True) is None


def test_space_counts_prefer_the_counters_and_fall_back_to_capped_counts(space, monkeypatch):
    for _ in range(3):
        services.create_job(space, {"name": "x"})
    Space.objects.filter(pk=space.pk).update(status_counts={})
    space.refresh_from_db()
    monkeypatch.setattr(queries, "COUNT_CAP", 2)

    assert queries.space_counts(space)["pending"] == 2

    Space.objects.filter(pk=space.pk).update(status_counts={"pending": 9})
    space.refresh_from_db()
    assert queries.space_counts(space)["pending"] == 9


def test_counts_from_jobs_leave_out_what_the_sequencer_has_still_to_apply(space):
    job, _ = services.create_job(space, {"name": "x"})
    services.create_job(space, {"name": "y"})
    Job.objects.filter(pk=job.pk).update(status="running")
    # an event the sequencer has not numbered: it will still move pending -> running
    JobEvent.objects.filter(space=space).update(seq=1)
    JobEvent.objects.create(
        job=job,
        space=space,
        type="started",
        status="running",
        previous_status="pending",
        attempt_number=1,
    )

    counts = queries.counts_from_jobs(space.pk)

    assert counts == dict.fromkeys(queries.STATUSES, 0) | {"pending": 2}


# --- the queue -------------------------------------------------------------------------------


def test_the_oldest_pending_job_across_priorities():
    space = SpaceFactory()
    JobFactory(space=space, status="pending", priority=9, available_at=T0 + timedelta(seconds=9))
    JobFactory(space=space, status="pending", priority=0, available_at=T0)
    JobFactory(space=space, status="running", priority=5, available_at=T0 - timedelta(hours=1))

    assert queries.oldest_pending(space.pk) == T0
    assert queries.oldest_pending(SpaceFactory().pk) is None


# --- events as JSON --------------------------------------------------------------------------


def test_an_event_reads_the_same_in_a_job_history_and_in_a_stream(space):
    job, _ = services.create_job(space, {"name": "x"})
    JobEvent.objects.filter(job=job).update(seq=5, created_at=T0)
    event = JobEvent.objects.get(job=job)

    history = queries.event_json(event)
    (envelope,) = queries.stored_envelopes(JobEvent.objects.filter(job=job), space.public_id)

    assert history == {
        "id": event.id,
        "type": "created",
        "status": "pending",
        "previousStatus": None,
        "data": None,
        "attemptNumber": 0,
        "seq": 5,
        "createdAt": "2030-01-01T12:00:00Z",
    }
    assert envelope == {
        "type": "created",
        "jobId": job.id,
        "jobName": "x",
        "spaceId": space.public_id,
        "status": "pending",
        "attemptNumber": 0,
        "data": {},  # streams send an object even when the event has no data
        "seq": 5,
        "timestamp": "2030-01-01T12:00:00Z",
    }
    assert envelope["type"] in events.LIFECYCLE_TYPES


def test_stored_envelopes_skip_unnumbered_events_and_keep_seq_order(space):
    job, _ = services.create_job(space, {"name": "x"})
    for seq in (3, None, 2):
        JobEvent.objects.create(job=job, space=space, type="t", status="pending", seq=seq)
    JobEvent.objects.filter(job=job, type="created").update(seq=1)

    replay = queries.stored_envelopes(JobEvent.objects.filter(job=job), space.public_id, limit=2)

    assert [e["seq"] for e in replay] == [1, 2]


def test_latest_events_are_the_newest_oldest_first_and_say_when_older_ones_were_left_out(space):
    job, _ = services.create_job(space, {"name": "chatty"})
    for n in range(5):
        events.record(job, "custom", {"n": n})
    shown, truncated = queries.latest_events(job, 3)
    assert [e.data for e in shown] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert truncated is True
    everything, truncated = queries.latest_events(job, 6)
    assert [e.type for e in everything] == ["created"] + ["custom"] * 5
    assert truncated is False
    with CaptureQueriesContext(connection) as captured:
        queries.latest_events(job, 3)
    assert len(captured) == 1
