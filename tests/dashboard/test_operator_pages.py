"""The Workers, Overview and Errors tabs of a space, the group actions, and the unattended
space warning on the space page and in the list of spaces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from jobs import rollups, streams, workers
from jobs import services as job_services
from jobs.models import Job
from spaces.models import ApiKey

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_debounce():
    workers.forget()
    yield
    workers.forget()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def url(name, cast, **kwargs):
    return reverse(name, kwargs={"public_id": cast.space.public_id, **kwargs})


def roll(space):
    streams.publish_space(space.pk)
    rollups.roll_up()


def failed_jobs(cast, errors, name="media.encode"):
    ids = []
    for error in errors:
        job, _ = job_services.create_job(cast.space, {"name": name})
        (taken,) = job_services.poll_jobs(cast.space, names=[name], worker_id="w")
        job_services.fail_job(taken, error, retry=False)
        ids.append(job.id)
    return ids


def test_the_workers_tab_lists_each_worker_with_what_it_holds(client, cast, clock):
    key, _ = ApiKey.issue(cast.space, "fleet", ["jobs:worker"])
    for _ in range(2):
        job_services.create_job(cast.space, {"name": "a"})
    job_services.poll_jobs(cast.space, count=2, worker_id="host-a:1")
    workers.seen(cast.space.pk, "host-a:1", key.pk)
    workers.seen(cast.space.pk, "host-b:2", key.pk)
    client.force_login(cast.bob)
    response = client.get(url("dashboard-workers", cast))
    assert response.status_code == 200
    found = {w.worker_id: w for w in response.context["workers"]}
    assert (found["host-a:1"].held, found["host-b:2"].held) == (2, 0)
    html = response.content.decode()
    assert html.count("data-worker=") == 2
    assert "fleet" in html


def test_the_overview_tab_shows_one_row_per_name(client, cast, clock):
    roll(cast.space)
    for name in ("a", "a", "b"):
        job_services.create_job(cast.space, {"name": name})
    roll(cast.space)
    clock.shift(65)
    client.force_login(cast.bob)
    response = client.get(url("dashboard-overview", cast))
    rows = {f.name: f for f in response.context["names"]}
    assert (rows["a"].pending, rows["b"].pending) == (2, 1)
    html = response.content.decode()
    assert html.count('data-name="') == 2
    assert "1 min 5 s" in html  # the oldest pending job's age


def test_the_errors_tab_groups_failures(client, cast, clock):
    failed_jobs(cast, ["Timeout after 30s", "Timeout after 45s", "disk full on /dev/sda1"])
    client.force_login(cast.bob)
    response = client.get(url("dashboard-errors", cast))
    groups = response.context["groups"]
    assert sorted(g.count for g in groups) == [1, 2]
    html = response.content.decode()
    assert html.count("data-group=") == 2
    assert "Timeout after &lt;n&gt;s" in html


def test_a_group_is_retried_then_killed_from_the_errors_tab(client, cast, clock):
    ids = failed_jobs(cast, ["Timeout after 30s", "Timeout after 45s", "other"])
    fp = Job.objects.get(pk=ids[0]).error_fingerprint
    client.force_login(cast.bob)
    target = url("dashboard-error-group", cast, fingerprint=fp)
    assert client.post(target, {"action": "retry"}).status_code == 302
    assert [Job.objects.get(pk=i).status for i in ids] == ["pending", "pending", "dead"]
    client.post(target, {"action": "kill"})
    assert [Job.objects.get(pk=i).status for i in ids] == ["killed", "killed", "dead"]


def test_an_outsider_gets_404_on_every_operator_page(client, cast):
    failed_jobs(cast, ["x"])
    fp = Job.objects.get(space=cast.space).error_fingerprint
    client.force_login(cast.charlie)
    for name in ("dashboard-workers", "dashboard-overview", "dashboard-errors"):
        assert client.get(url(name, cast)).status_code == 404
    response = client.post(url("dashboard-error-group", cast, fingerprint=fp), {"action": "retry"})
    assert response.status_code == 404
    assert Job.objects.get(space=cast.space).status == "dead"


def test_a_space_with_pending_jobs_and_no_worker_says_so(client, cast, clock):
    job_services.create_job(cast.space, {"name": "a"})
    streams.publish_space(cast.space.pk)
    client.force_login(cast.bob)
    space_page = url("dashboard-space", cast)
    spaces_page = reverse("dashboard-org", kwargs={"slug": cast.org.slug})
    assert "data-idle-warning" in client.get(space_page).content.decode()
    assert "never seen" in client.get(spaces_page).content.decode()
    # a worker polls: no warning, until it has not been seen for two minutes
    workers.seen(cast.space.pk, "w", None)
    assert "data-idle-warning" not in client.get(space_page).content.decode()
    assert "data-idle-warning" not in client.get(spaces_page).content.decode()
    clock.shift(rollups.IDLE_AFTER.total_seconds() + 1)
    assert "data-idle-warning" in client.get(spaces_page).content.decode()


def test_no_warning_without_pending_jobs(client, cast):
    client.force_login(cast.bob)
    assert "data-idle-warning" not in client.get(url("dashboard-space", cast)).content.decode()
