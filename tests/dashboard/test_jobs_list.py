from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from dashboard import services
from jobs import queries
from jobs import services as job_services
from jobs.models import Job, JobEvent


def _list(client, cast, **params):
    url = reverse("dashboard-space", kwargs={"public_id": cast.space.public_id})
    return client.get(url, params)


def _ids(response) -> list[str]:
    return [job.id for job in response.context["page"].jobs]


@pytest.fixture
def jobs(cast) -> list[Job]:
    made = []
    for i in range(7):
        made.append(
            Job.objects.create(
                space=cast.space,
                name="email.send" if i % 2 else "report.build",
                payload={"n": i, "to": f"user{i}@example.com"},
                status="dead" if i == 3 else "pending",
                last_error="SMTP 550 mailbox unavailable" if i == 3 else "",
            )
        )
    Job.objects.create(space=cast.other_space, name="email.send", payload={"n": 99})
    return made


def test_it_lists_the_spaces_jobs_newest_first(client, cast, jobs):
    client.force_login(cast.bob)
    response = _list(client, cast)
    assert _ids(response) == [j.id for j in reversed(jobs)]


def test_status_and_name_filters(client, cast, jobs):
    client.force_login(cast.bob)
    assert _ids(_list(client, cast, status="dead")) == [jobs[3].id]
    names = {j.name for j in _list(client, cast, name="report.build").context["page"].jobs}
    assert names == {"report.build"}
    # an unknown status is ignored rather than an error
    assert len(_ids(_list(client, cast, status="bogus"))) == 7


def test_search_finds_payload_text_error_text_and_ids(client, cast, jobs):
    client.force_login(cast.bob)
    assert _ids(_list(client, cast, q="user5@example")) == [jobs[5].id]
    assert _ids(_list(client, cast, q="mailbox unavailable")) == [jobs[3].id]
    assert _ids(_list(client, cast, q=jobs[2].id.lower())) == [jobs[2].id]
    assert _ids(_list(client, cast, q="nothing-like-this")) == []


def test_search_never_reaches_other_spaces(client, cast, jobs):
    client.force_login(cast.bob)
    assert _ids(_list(client, cast, q='"n": 99')) == []
    other = Job.objects.get(space=cast.other_space)
    assert _ids(_list(client, cast, q=other.id)) == []


def test_keyset_pages_walk_back_and_forth(client, cast, jobs, monkeypatch):
    monkeypatch.setattr(services, "PAGE_SIZE", 3)
    client.force_login(cast.bob)
    newest_first = [j.id for j in reversed(jobs)]
    first = _list(client, cast).context["page"]
    assert [j.id for j in first.jobs] == newest_first[:3]
    second = _list(client, cast, before=first.older).context["page"]
    assert [j.id for j in second.jobs] == newest_first[3:6]
    third = _list(client, cast, before=second.older).context["page"]
    assert [j.id for j in third.jobs] == newest_first[6:]
    assert third.older is None
    back = _list(client, cast, after=third.newer).context["page"]
    assert [j.id for j in back.jobs] == newest_first[3:6]


def test_search_scans_a_bounded_window_and_continues_below_it(client, cast, jobs, monkeypatch):
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 3)
    client.force_login(cast.bob)
    # jobs[1] is below the newest three: the first page does not find it but offers to go on
    page = _list(client, cast, q="user1@").context["page"]
    assert page.jobs == []
    assert page.older == jobs[4].id
    page = _list(client, cast, q="user1@", before=page.older).context["page"]
    assert [j.id for j in page.jobs] == [jobs[1].id]


def test_the_rows_fragment_serves_live_resync(client, cast, jobs):
    client.force_login(cast.bob)
    response = _list(client, cast, fragment="rows")
    data = response.json()
    assert jobs[0].id in data["rows"]
    assert data["counts"]["pending"] == 6


def test_the_page_embeds_the_stream_url_and_the_chart(client, cast, jobs):
    client.force_login(cast.bob)
    html = _list(client, cast).content.decode()
    assert f"/api/v1/realtime/spaces/{cast.space.public_id}" in html
    assert reverse("dashboard-chart", kwargs={"public_id": cast.space.public_id}) in html


def test_the_throughput_chart_counts_events_per_minute(client, cast):
    start = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        job, _ = job_services.create_job(cast.space, {"name": "a"})
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        job_services.create_job(cast.space, {"name": "b"})
        job_services.create_job(cast.space, {"name": "c"})
        job_services.kill_job(job)
    with time_machine.travel(start - timedelta(hours=2), tick=False):
        job_services.create_job(cast.space, {"name": "too old"})
    assert JobEvent.objects.filter(space=cast.space, type="created").count() == 4
    with time_machine.travel(start + timedelta(minutes=3), tick=False):
        chart = services.throughput(cast.space)
    created = chart["series"]["created"]
    assert len(created) == 60
    assert created[-4:] == [1, 0, 2, 0]
    assert sum(created) == 3
    assert sum(chart["series"]["dead"]) == 0


def test_the_chart_endpoint_returns_json_cached_briefly(client, cast):
    from django.core.cache import cache

    cache.clear()
    client.force_login(cast.bob)
    url = reverse("dashboard-chart", kwargs={"public_id": cast.space.public_id})
    job_services.create_job(cast.space, {"name": "a"})
    assert sum(client.get(url).json()["series"]["created"]) == 1
    job_services.create_job(cast.space, {"name": "b"})
    assert sum(client.get(url).json()["series"]["created"]) == 1  # from the cache
    cache.clear()
    assert sum(client.get(url).json()["series"]["created"]) == 2


def test_fallback_counts_are_capped(cast, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    for _ in range(3):
        Job.objects.create(space=cast.space, name="x")
    assert queries.capped_counts(cast.space)["pending"] == 2
