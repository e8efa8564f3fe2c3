"""The job page tells what happened: errors as written (string or structured), each failed
attempt with its error, the backoff policy in words, runs of reports folded."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dashboard import jobview
from dashboard.templatetags.dashboard import readable_data
from dashboard.views import EVENTS_SHOWN
from jobs import services as job_services
from jobs.models import Job, JobEvent
from jobs.services import DEFAULT_BACKOFF

TRACEBACK = 'Traceback (most recent call last):\n  File "w.py", line 1\nValueError: "x"'


def _url(cast, job):
    return reverse("dashboard-job", kwargs={"public_id": cast.space.public_id, "job_id": job.id})


def _claimed(cast, name="fragile", **fields) -> Job:
    job_services.create_job(cast.space, {"name": name, **fields})
    return _reclaimed(cast, name)


def _reclaimed(cast, name="fragile") -> Job:
    [polled] = job_services.poll_jobs(cast.space, count=1, names=[name])
    job_services.ack_job(polled)
    return polled


def test_a_string_error_is_shown_as_written():
    view = jobview.error_view(TRACEBACK)
    assert view.text == TRACEBACK
    assert not view.structured
    assert view.headline == "Traceback (most recent call last):"


@pytest.mark.parametrize(
    "value",
    [
        {"type": "TimeoutError", "message": "slow", "traceback": "a\nb"},
        json.dumps({"type": "TimeoutError", "message": "slow", "traceback": "a\nb"}),
    ],
)
def test_a_structured_error_reads_as_type_message_and_traceback(value):
    view = jobview.error_view(value)
    assert view.structured
    assert (view.type, view.message, view.traceback) == ("TimeoutError", "slow", "a\nb")
    assert view.headline == "TimeoutError: slow"


def test_other_json_errors_are_shown_as_indented_json():
    assert jobview.error_view([1, 2]).text == "[\n  1,\n  2\n]"
    assert not jobview.error_view("")
    assert not jobview.error_view(None)


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (None, "exponential: 1 s after the first failure, doubling each retry, at most 1 h, "),
        ({"type": "fixed", "delaySeconds": 90, "jitter": False}, "fixed: 1 min 30 s between"),
        ({"delaySeconds": 5, "maxDelaySeconds": 86400, "jitter": False}, "5 s after the first"),
    ],
)
def test_the_backoff_policy_reads_in_words(policy, words):
    text = jobview.describe_backoff(policy, DEFAULT_BACKOFF)
    assert words in text
    assert "{" not in text


def test_event_data_keeps_line_breaks_and_quotes():
    text = readable_data({"error": TRACEBACK, "attemptNumber": 1})
    assert text == (
        "error: |\n"
        "  Traceback (most recent call last):\n"
        '    File "w.py", line 1\n'
        '  ValueError: "x"\n'
        "attemptNumber: 1"
    )


def test_runs_of_reports_fold_into_one_entry(cast):
    job = _claimed(cast)
    for n in range(60):
        job_services.report_progress(job, n + 1, f"step {n}")
    job_services.complete_job(job, {"ok": True})
    events = list(JobEvent.objects.filter(job=job).order_by("id"))
    entries = jobview.timeline(events)
    assert [(e.type, e.count) for e in entries] == [
        ("created", 1),
        ("delivered", 1),
        ("started", 1),
        ("progress", 60),
        ("completed", 1),
    ]
    run = entries[3]
    assert run.summary == "1% step 0 → 60% step 59"
    assert len(run.members) == jobview.RUN_ITEMS_SHOWN
    assert run.hidden == 60 - jobview.RUN_ITEMS_SHOWN


def test_the_page_shows_each_failed_attempt_with_its_error(client, cast):
    job = _claimed(cast, max_retries=2, backoff={"type": "fixed", "delaySeconds": 0})
    job_services.fail_job(job, TRACEBACK)
    job = _reclaimed(cast)
    structured = {"type": "KeyError", "message": "'file'", "traceback": "x\ny"}
    job_services.fail_job(job, json.dumps(structured))
    # more reports than the timeline shows: the failed attempts stay on the page
    job = _reclaimed(cast)
    for n in range(EVENTS_SHOWN + 5):
        job_services.report_progress(job, n % 100, "")
    client.force_login(cast.bob)
    response = client.get(_url(cast, job))
    html = response.content.decode()
    attempts = response.context["failed_attempts"]
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retried"), (2, "retried")]
    assert attempts[0].error.text == TRACEBACK
    assert attempts[1].error.type == "KeyError"
    # the traceback as text in a <pre>, escaped once, not as JSON with \n
    assert "File &quot;w.py&quot;, line 1\nValueError" in html
    assert "\\n" not in html.split('id="attempts"')[1].split("</section>")[0]
    assert response.context["events_truncated"]
    assert "Attempt 2/3" in html
    assert "fixed: 0 s between attempts" in html
