from __future__ import annotations

from datetime import UTC, datetime

from django.urls import reverse

from jobs import services as job_services
from jobs.models import Job, JobLog


def _job_url(cast, job, name="dashboard-job"):
    return reverse(name, kwargs={"public_id": cast.space.public_id, "job_id": job.id})


def _running(cast, **fields) -> Job:
    job, _ = job_services.create_job(cast.space, {"name": "report.build", "payload": {"k": "v"}})
    [polled] = job_services.poll_jobs(cast.space, count=1)
    job_services.ack_job(polled)
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def test_the_job_page_shows_fields_payload_progress_stages_and_events(client, cast):
    job = _running(cast)
    job_services.report_progress(
        job,
        40,
        "rendering",
        {"fetch": {"percent": 100, "message": "done"}, "render": {"percent": 20}},
    )
    client.force_login(cast.bob)
    response = client.get(_job_url(cast, job))
    html = response.content.decode()
    assert response.status_code == 200
    assert job.id in html
    assert "&quot;k&quot;: &quot;v&quot;" in html  # payload as pretty JSON
    assert "rendering" in html
    assert [s["name"] for s in response.context["stages"]] == ["fetch", "render"]
    assert response.context["percent"] == 40
    types = [e.type for e in response.context["events"]]
    assert types == ["created", "delivered", "started", "progress"]
    assert response.context["can_kill"] and not response.context["can_retry"]


def test_the_fragment_is_the_live_part_only(client, cast):
    job = _running(cast)
    client.force_login(cast.bob)
    response = client.get(_job_url(cast, job), {"fragment": "1"})
    html = response.content.decode()
    assert "data-job-status" in html
    assert "<html" not in html


def test_a_member_kills_and_retries_a_job(client, cast):
    job = _running(cast)
    client.force_login(cast.bob)
    response = client.post(_job_url(cast, job, "dashboard-job-kill"), {"reason": "stuck"})
    assert response["Location"] == _job_url(cast, job)
    job.refresh_from_db()
    assert job.status == "killed"
    assert job.events.get(type="killed").data == {"reason": "stuck"}
    client.post(_job_url(cast, job, "dashboard-job-retry"))
    job.refresh_from_db()
    assert job.status == "pending"
    assert job.attempt_number == 1


def test_an_impossible_transition_is_a_message_not_an_error(client, cast):
    job = _running(cast)
    job_services.complete_job(job, {"ok": True})
    client.force_login(cast.bob)
    response = client.post(_job_url(cast, job, "dashboard-job-kill"), follow=True)
    assert response.status_code == 200
    assert "Could not kill the job" in response.content.decode()
    job.refresh_from_db()
    assert job.status == "completed"


def _logs(cast, job, n):
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    JobLog.objects.bulk_create(
        JobLog(
            job=job,
            seq=i,
            level="error" if i % 10 == 0 else "info",
            message=f"line {i}",
            timestamp=ts,
        )
        for i in range(1, n + 1)
    )


def test_logs_come_newest_batch_first_then_older_then_the_tail(client, cast, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "LOGS_PAGE", 4)
    job = _running(cast)
    _logs(cast, job, 10)
    client.force_login(cast.bob)
    url = _job_url(cast, job, "dashboard-job-logs")
    data = client.get(url).json()
    assert [line["seq"] for line in data["lines"]] == [7, 8, 9, 10]
    assert data["more"] is True
    data = client.get(url, {"before": 7}).json()
    assert [line["seq"] for line in data["lines"]] == [3, 4, 5, 6]
    data = client.get(url, {"after": 8}).json()
    assert [line["seq"] for line in data["lines"]] == [9, 10]
    assert data["more"] is False


def test_logs_filter_by_level_and_text(client, cast):
    job = _running(cast)
    _logs(cast, job, 25)
    client.force_login(cast.bob)
    url = _job_url(cast, job, "dashboard-job-logs")
    data = client.get(url, {"level": "error"}).json()
    assert [line["seq"] for line in data["lines"]] == [10, 20]
    data = client.get(url, {"q": "line 2"}).json()
    assert {line["seq"] for line in data["lines"]} == {2, *range(20, 26)}
    # junk cursors are ignored, not a 500
    assert client.get(url, {"after": "x", "before": "-1"}).status_code == 200
