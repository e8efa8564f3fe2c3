from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from prometheus_client import REGISTRY

from jobs.models import Job
from notifications.models import NotificationDelivery
from spaces.models import Space
from tests.factories import JobFactory, SpaceFactory, issue_key

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def process_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- access ----------------------------------------------------------------------------------


def test_metrics_are_off_until_a_token_or_network_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []

    assert client.get("/metrics").status_code == 404


def test_a_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = []

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")

    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")
    assert b"jobyard_http_request_duration_seconds" in right.content


def test_allowed_networks_admit_only_their_addresses(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "::1"]

    assert client.get("/metrics", REMOTE_ADDR="10.2.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.9").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.9.9.9").status_code == 200


def test_with_both_rules_both_must_pass(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    auth = {"HTTP_AUTHORIZATION": "Bearer s3cret-token"}

    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", **auth).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="172.16.0.1", **auth).status_code == 404


def test_a_malformed_network_fails_the_system_check(settings):
    from config.apps import check_operations_settings

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/33"]

    assert [e.id for e in check_operations_settings()] == ["operations.E001"]


# --- process metrics after a known sequence -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_transitions_and_claim_latency_after_a_known_sequence(scrape):
    # given: a space, a key, and the counters as they stand
    space = SpaceFactory()
    api = _api(issue_key(space))
    jobs_url = f"/api/v1/spaces/{space.public_id}/jobs"
    poll_url = f"/api/v1/spaces/{space.public_id}/jobs/poll"
    events = ["created", "delivered", "started", "completed", "dead"]
    moves = [
        ("new", "pending"),
        ("pending", "delivered"),
        ("delivered", "running"),
        ("running", "completed"),
        ("delivered", "dead"),
    ]
    before_events = {t: process_value("jobyard_job_events_total", type=t) for t in events}
    before_moves = {
        m: process_value("jobyard_job_transitions_total", from_status=m[0], to_status=m[1])
        for m in moves
    }
    before_polls = process_value(
        "jobyard_claim_duration_seconds_count", endpoint="poll", status="200"
    )
    create_route = "/" + resolve(jobs_url).route
    before_creates = process_value(
        "jobyard_http_request_duration_seconds_count",
        method="POST",
        route=create_route,
        status="201",
    )

    # when: two jobs are created and polled; one is acked and completed, one fails for good
    for name in ("a", "b"):
        assert api.post(jobs_url, {"name": name}, format="json").status_code == 201
    first = api.post(poll_url, {"count": 1}, format="json").json()["jobs"][0]
    second = api.post(poll_url, {"count": 1}, format="json").json()["jobs"][0]
    assert api.post(f"/api/v1/jobs/{first['id']}/ack").status_code == 200
    assert api.post(f"/api/v1/jobs/{first['id']}/complete", {}, format="json").status_code == 200
    failed = api.post(
        f"/api/v1/jobs/{second['id']}/fail", {"error": "boom", "retry": False}, format="json"
    )
    assert failed.status_code == 200

    # then
    def delta_event(t: str) -> float:
        return process_value("jobyard_job_events_total", type=t) - before_events[t]

    def delta_move(m: tuple[str, str]) -> float:
        value = process_value("jobyard_job_transitions_total", from_status=m[0], to_status=m[1])
        return value - before_moves[m]

    assert {t: delta_event(t) for t in events} == {
        "created": 2,
        "delivered": 2,
        "started": 1,
        "completed": 1,
        "dead": 1,
    }
    assert {m: delta_move(m) for m in moves} == dict.fromkeys(moves, 1) | {
        ("new", "pending"): 2,
        ("pending", "delivered"): 2,
    }
    polls = process_value("jobyard_claim_duration_seconds_count", endpoint="poll", status="200")
    assert polls - before_polls == 2
    creates = process_value(
        "jobyard_http_request_duration_seconds_count",
        method="POST",
        route=create_route,
        status="201",
    )
    assert creates - before_creates == 2

    # and the database metrics show the space's jobs by status
    samples = scrape()
    by_status = {
        status: samples.get("jobyard_jobs", space=space.public_id, status=status)
        for status in ("pending", "delivered", "running", "completed", "dead", "killed")
    }
    assert by_status == {
        "pending": 0,
        "delivered": 0,
        "running": 0,
        "completed": 1,
        "dead": 1,
        "killed": 0,
    }
    assert samples.get("jobyard_space_events_total", space=space.public_id) >= 7


def test_custom_event_types_share_one_label():
    from config.metrics import on_events_committed

    job = JobFactory(status="running")
    before = process_value("jobyard_job_events_total", type="custom")
    event = mock.Mock(type="my.own.type", previous_status=None, status="running", job=job)

    on_events_committed(events=[event])

    assert process_value("jobyard_job_events_total", type="custom") - before == 1
    assert process_value("jobyard_job_events_total", type="my.own.type") == 0


def test_every_lifecycle_type_counts_under_its_own_name():
    from config.metrics import on_events_committed
    from jobs.events import LIFECYCLE_TYPES

    job = JobFactory(status="running")
    # keepalive too: the service writes it (it once counted as custom, missing from a copy)
    for kind in sorted(LIFECYCLE_TYPES):
        before = process_value("jobyard_job_events_total", type=kind)
        event = mock.Mock(type=kind, previous_status=None, status="running", job=job)

        on_events_committed(events=[event])

        assert process_value("jobyard_job_events_total", type=kind) - before == 1, kind


# --- database metrics ----------------------------------------------------------------------------


def test_queue_age_is_the_wait_of_the_oldest_pending_job_across_priorities(scrape):
    space = SpaceFactory()
    idle = SpaceFactory()
    # The oldest job has the lowest priority: a MIN over the first priority alone would miss it.
    JobFactory(space=space, status="pending", priority=0, available_at=T0)
    JobFactory(space=space, status="pending", priority=9, available_at=T0 + timedelta(seconds=60))
    JobFactory(space=space, status="pending", priority=5, available_at=T0 + timedelta(seconds=30))
    JobFactory(space=space, status="completed", priority=3, available_at=T0 - timedelta(hours=1))
    JobFactory(space=idle, status="scheduled", available_at=T0 + timedelta(hours=1))

    with time_machine.travel(T0 + timedelta(seconds=90), tick=False):
        samples = scrape()

    assert samples.get("jobyard_queue_oldest_pending_age_seconds", space=space.public_id) == 90
    assert samples.get("jobyard_queue_oldest_pending_age_seconds", space=idle.public_id) == 0


def test_jobs_per_status_come_from_the_space_counts_not_a_count(scrape):
    space = SpaceFactory(name="billing")
    counts = {"scheduled": 1, "pending": 0, "delivered": 2, "running": 3}
    counts |= {"completed": 1_000_000, "dead": 5, "killed": 0}
    Space.objects.filter(pk=space.pk).update(status_counts=counts)
    Space.objects.filter(pk=space.pk).update(paused_at=T0)

    # One query for the spaces, one for recent deliveries, two for the per-name rollups (the
    # hour's minute rows, the per-name counters): nothing reads the jobs table (the counts say
    # nothing is pending, so there is no queue to look at either).
    with CaptureQueriesContext(connection) as queries:
        samples = scrape()

    assert len(queries) == 4
    assert not [q for q in queries if Job._meta.db_table in q["sql"]]

    for status, n in counts.items():
        assert samples.get("jobyard_jobs", space=space.public_id, status=status) == n
    assert samples.get("jobyard_space_paused", space=space.public_id) == 1
    assert (
        samples.get(
            "jobyard_space_info",
            space=space.public_id,
            org=space.organization.slug,
            name="billing",
        )
        == 1
    )
    assert Job.objects.count() == 0


def test_deliveries_are_reported_by_channel_and_outcome_over_the_recent_window(scrape):
    space = SpaceFactory()
    with time_machine.travel(T0 - timedelta(hours=1), tick=False):
        NotificationDelivery.objects.create(space=space, channel="slack", event="x", success=True)
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        for success in (True, True, False):
            NotificationDelivery.objects.create(
                space=space, channel="slack", event="x", success=success
            )
        NotificationDelivery.objects.create(space=space, channel="push", event="x", success=False)

    with time_machine.travel(T0, tick=False):
        samples = scrape()

    def recent(channel: str, outcome: str) -> float | None:
        return samples.get(
            "jobyard_notification_deliveries_recent", channel=channel, outcome=outcome
        )

    assert recent("slack", "success") == 2
    assert recent("slack", "failure") == 1
    assert recent("push", "failure") == 1
    assert recent("callback", "success") == 0


def test_database_metrics_are_cached_between_scrapes(client, settings, scrape):
    space = SpaceFactory()
    scrape()
    settings.METRICS_CACHE_SECONDS = 60
    before = scrape()
    Space.objects.filter(pk=space.pk).update(paused_at=T0)

    cached = scrape()
    from config.metrics import DATABASE_COLLECTOR

    DATABASE_COLLECTOR.invalidate()
    fresh = scrape()

    assert before.get("jobyard_space_paused", space=space.public_id) == 0
    assert cached.get("jobyard_space_paused", space=space.public_id) == 0
    assert fresh.get("jobyard_space_paused", space=space.public_id) == 1


def test_a_database_failure_still_serves_the_process_metrics(scrape):
    with mock.patch("spaces.models.Space.objects.order_by", side_effect=RuntimeError("db down")):
        samples = scrape()

    assert samples.get("jobyard_metrics_database_up") == 0
    assert "jobyard_http_request_duration_seconds" in samples.text


def test_spaces_beyond_the_limit_are_left_out_and_flagged(scrape, settings):
    spaces = [SpaceFactory() for _ in range(3)]
    settings.METRICS_MAX_SPACES = 2

    samples = scrape()

    assert samples.get("jobyard_metrics_spaces_truncated") == 1
    assert samples.get("jobyard_space_paused", space=spaces[0].public_id) == 0
    assert samples.get("jobyard_space_paused", space=spaces[2].public_id) is None


# --- several processes -----------------------------------------------------------------------------

_CHILD = """
import django, os, sys
django.setup()
from config import metrics
if sys.argv[1] == "count":
    metrics.JOB_EVENTS.labels("created").inc(int(sys.argv[2]))
else:
    from prometheus_client import multiprocess, CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    sys.stdout.write(generate_latest(registry).decode())
"""


def test_multiprocess_mode_adds_up_the_processes_of_a_host(tmp_path):
    env = os.environ | {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("count", "2")
    run("count", "3")
    output = run("render")

    assert 'jobyard_job_events_total{type="created"} 5.0' in output


def _api(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_a_space_whose_counts_are_not_known_yet_has_no_job_series(scrape):
    space = SpaceFactory()
    Space.objects.filter(pk=space.pk).update(status_counts={})
    JobFactory(space=space, status="pending", available_at=T0)

    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        samples = scrape()

    assert samples.get("jobyard_jobs", space=space.public_id, status="pending") is None
    # the queue age does not need the counts
    assert samples.get("jobyard_queue_oldest_pending_age_seconds", space=space.public_id) == 5
