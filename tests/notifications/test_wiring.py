from __future__ import annotations

import pytest

from jobs import retention as job_retention
from jobs.events import event_committed
from jobs.maintenance import steps
from jobs.models import Job, JobEvent
from lib.outbound import masked_url, url_host, validate_outbound_url
from notifications import outbox, retention
from spaces.services import resume_hooks


def test_the_app_connects_its_hooks_once():
    receivers = list(event_committed._live_receivers(JobEvent)[0])
    assert receivers.count(outbox.on_event_committed) == 1
    assert resume_hooks.count(outbox.wake_on_resume) == 1
    task = steps["notifications.flush_outbox"]
    assert task.func is outbox.flush_outbox and task.every == 5.0


def test_the_outbox_sends_the_delivery_tasks_by_their_registered_names():
    from celery import current_app

    from notifications import tasks

    assert (tasks.deliver.name, tasks.dispatch.name) == (outbox.DELIVER_TASK, outbox.DISPATCH_TASK)
    assert current_app.tasks[outbox.DELIVER_TASK] is tasks.deliver._get_current_object()


def test_job_retention_reaches_the_deliveries_through_its_hooks():
    assert job_retention.pruners["deliveries"] is retention.prune_deliveries
    receivers = list(job_retention.jobs_pruned._live_receivers(Job)[0])
    assert receivers.count(retention.detach_deliveries) == 1


@pytest.mark.parametrize(
    ("url", "allow_private", "problem"),
    [
        ("https://hooks.slack.com/services/T/B/X", False, None),
        ("http://workers.example.com:8080/wake?x=1", False, None),
        ("http://127.0.0.1:8000/", True, None),
        ("http://127.0.0.1:8000/", False, "private"),
        ("http://[::1]/", False, "private"),
        ("http://localhost/", False, "private"),
        ("http://169.254.169.254/", True, "metadata"),
        ("https://user:pw@example.com/", False, "user name"),
        ("ftp://example.com/", False, "http or https"),
        ("https://example.com:99999/", False, "not a valid URL"),
        ("https://exa mple.com/", False, "spaces"),
        ("https:///path", False, "host"),
        ("https://bücher.example/", False, "ASCII"),
        ("https://example.com/" + "a" * 2000, False, "2000"),
        (None, False, "string"),
    ],
)
def test_url_validation(url, allow_private, problem):
    errors = validate_outbound_url(url, allow_private=allow_private)
    if problem is None:
        assert errors == []
    else:
        assert len(errors) == 1 and problem in errors[0]
        assert "hooks" not in errors[0]


def test_urls_are_shown_and_logged_by_host_only():
    url = "https://hooks.slack.com/services/T000/B000/XXXX?token=abc"
    assert url_host(url) == "hooks.slack.com"
    assert masked_url(url) == "https://hooks.slack.com/…"
    assert masked_url("http://[::1]:8080/x") == "http://[::1]:8080/…"
    assert url_host("not a url") == "" and masked_url("") == ""
