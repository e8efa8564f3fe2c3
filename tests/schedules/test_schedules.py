from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from jobs import services as job_services
from jobs.models import Job
from schedules import cron, services
from schedules.models import Schedule
from spaces import scopes
from tests import threads
from tests.factories import SpaceFactory, issue_key

T0 = datetime(2026, 6, 1, 8, 59, 30, tzinfo=UTC)


def make_schedule(space, **fields) -> Schedule:
    values = {
        "name": "nightly",
        "cron": "0 9 * * *",
        "timezone": "UTC",
        "job_template": {"name": "report.build", "payload": {"kind": "daily"}, "maxRetries": 1},
    }
    values.update(fields)
    schedule = Schedule(space=space, **values)
    schedule.next_run_at = services.compute_next(schedule, datetime.now(tz=UTC))
    schedule.save()
    return schedule


@pytest.fixture
def space(db):
    return SpaceFactory()


def test_a_due_tick_creates_one_job_carrying_the_schedule_and_tick(space):
    with time_machine.travel(T0, tick=False):
        schedule = make_schedule(space)
    assert schedule.next_run_at == datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC), tick=False):
        assert services.tick() == 1
        assert services.tick() == 0  # the same tick never fires twice

    job = Job.objects.get(space=space)
    assert job.name == "report.build"
    assert job.payload == {"kind": "daily"}
    assert job.max_retries == 1
    assert job.idempotency_key == "schedule:nightly:2026-06-01T09:00:00Z"
    schedule.refresh_from_db()
    assert schedule.last_job_id == job.id
    assert schedule.next_run_at == datetime(2026, 6, 2, 9, 0, tzinfo=UTC)


def test_a_tick_one_second_early_does_not_fire(space):
    with time_machine.travel(T0, tick=False):
        make_schedule(space)
    with time_machine.travel(datetime(2026, 6, 1, 8, 59, 59, tzinfo=UTC), tick=False):
        assert services.tick() == 0
    assert not Job.objects.exists()


def test_missed_ticks_fire_only_the_latest_one(space):
    with time_machine.travel(T0, tick=False):
        make_schedule(space, cron="@hourly")
    # The scheduler was down for five hours.
    with time_machine.travel(datetime(2026, 6, 1, 14, 20, tzinfo=UTC), tick=False):
        assert services.tick() == 1
        assert services.tick() == 0
    job = Job.objects.get()
    assert job.idempotency_key.endswith("2026-06-01T14:00:00Z")
    assert Schedule.objects.get().next_run_at == datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


def test_daily_ticks_follow_the_time_zone_across_daylight_saving(space):
    # Europe/Berlin leaves summer time on 2026-10-25: 09:00 local is 07:00 UTC before, 08:00 after.
    with time_machine.travel(datetime(2026, 10, 23, 12, 0, tzinfo=UTC), tick=False):
        schedule = make_schedule(space, timezone="Europe/Berlin")
    runs = cron.upcoming(
        schedule.cron, schedule.timezone, datetime(2026, 10, 23, 12, 0, tzinfo=UTC), 3
    )
    assert runs == [
        datetime(2026, 10, 24, 7, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
    ]


def test_a_fixed_time_runs_once_when_the_clocks_go_back():
    # 2026-10-25 in Berlin: 02:00-03:00 local happens twice (00:00-01:00 UTC in CEST, then
    # 01:00-02:00 UTC in CET). 02:30 local runs in the first pass only.
    after = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    runs = cron.upcoming("30 2 * * *", "Europe/Berlin", after, 2)
    assert runs == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    # With a fixed hour and a minute list, none of the second pass runs either.
    quarter = cron.upcoming("*/15 2 * * *", "Europe/Berlin", after, 5)
    assert [t.hour for t in quarter] == [0, 0, 0, 0, 1]
    assert quarter[-1].day == 26


def test_an_every_hour_schedule_keeps_its_rhythm_through_the_repeated_hour():
    after = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    runs = cron.upcoming("30 * * * *", "Europe/Berlin", after, 4)
    # 01:30 CEST, 02:30 CEST, 02:30 CET, 03:30 CET: one hour apart in real time.
    assert [t - after for t in runs] == [timedelta(minutes=30 + 60 * i) for i in range(4)]


def test_a_tick_in_the_skipped_hour_runs_when_the_clock_resumes():
    # 2026-03-29 in Berlin: 02:00-03:00 local does not exist; 02:30 runs at 03:00 CEST.
    runs = cron.upcoming("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert runs == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_skip_overlap_holds_back_while_the_previous_job_is_unfinished(space):
    with time_machine.travel(T0, tick=False):
        make_schedule(space, cron="@hourly", overlap=Schedule.Overlap.SKIP)
    with time_machine.travel(datetime(2026, 6, 1, 9, 0, tzinfo=UTC), tick=False):
        assert services.tick() == 1
    with time_machine.travel(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), tick=False):
        assert services.tick() == 0  # the 09:00 job is still pending
    assert Job.objects.count() == 1
    first = Job.objects.get()
    job_services.kill_job(first, "done with it")
    with time_machine.travel(datetime(2026, 6, 1, 11, 0, tzinfo=UTC), tick=False):
        assert services.tick() == 1
    assert Job.objects.count() == 2


def test_allow_overlap_fires_regardless(space):
    with time_machine.travel(T0, tick=False):
        make_schedule(space, cron="@hourly")
    for hour in (9, 10, 11):
        with time_machine.travel(datetime(2026, 6, 1, hour, 0, tzinfo=UTC), tick=False):
            services.tick()
    assert Job.objects.count() == 3


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(space):
    with time_machine.travel(T0, tick=False):
        schedule = make_schedule(space, cron="@hourly")
        services.pause(schedule)
    with time_machine.travel(datetime(2026, 6, 1, 12, 30, tzinfo=UTC), tick=False):
        assert services.tick() == 0
        services.resume(schedule)
    assert Schedule.objects.get().next_run_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert not Job.objects.exists()


def test_two_schedulers_racing_on_the_same_tick_make_one_job(space):
    with time_machine.travel(T0, tick=False):
        schedule = make_schedule(space)
    now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    # Both schedulers loaded the schedule before either fired it.
    first, second = Schedule.objects.get(pk=schedule.pk), Schedule.objects.get(pk=schedule.pk)
    assert services.fire_due(first, now) is not None
    assert services.fire_due(second, now) is None
    assert Job.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_on_postgres_fire_each_tick_once():
    space = SpaceFactory()
    schedule = make_schedule(space, cron="* * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=datetime.now(tz=UTC) - timedelta(seconds=1)
    )
    barrier = threading.Barrier(8)

    def run() -> int:
        barrier.wait(30)
        return services.tick()

    made = threads.run_together(8, run)
    assert sorted(made) == [0] * 7 + [1]
    assert Job.objects.filter(space=space).count() == 1
    assert connection.vendor == "postgresql"


def test_cron_validation():
    assert cron.validate_expression("*/5 * * * *") is None
    assert cron.validate_expression("@daily") is None
    assert cron.validate_expression("* * * * * *") is not None  # no seconds field
    assert cron.validate_expression("61 * * * *") is not None
    assert cron.validate_timezone("Europe/Berlin") is None
    assert cron.validate_timezone("Mars/Olympus") is not None


# --- API ------------------------------------------------------------------------------------


@pytest.fixture
def writer(space):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_key(space, [scopes.READ, scopes.SCHEDULES_WRITE])}"
    )
    return client


def url(space, suffix: str = "") -> str:
    return f"/api/v1/spaces/{space.public_id}/schedules{suffix}"


BODY = {
    "name": "nightly",
    "cron": "0 2 * * *",
    "timezone": "Europe/Berlin",
    "job": {"name": "cleanup", "payload": {"deep": True}},
}


def test_the_api_creates_reads_updates_and_deletes_a_schedule(space, writer):
    created = writer.post(url(space), BODY, format="json")
    assert created.status_code == 201, created.json()
    assert len(created.json()["nextRuns"]) == 5
    assert created.json()["nextRuns"][0] == created.json()["nextRunAt"]

    listed = writer.get(url(space)).json()["schedules"]
    assert [s["name"] for s in listed] == ["nightly"]

    patched = writer.patch(url(space, "/nightly"), {"cron": "30 3 * * *"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["cron"] == "30 3 * * *"

    assert writer.post(url(space, "/nightly/pause")).json()["enabled"] is False
    resumed = writer.post(url(space, "/nightly/resume")).json()
    assert resumed["enabled"] is True and resumed["nextRunAt"] is not None

    triggered = writer.post(url(space, "/nightly/trigger"))
    assert triggered.status_code == 201
    job = Job.objects.get(pk=triggered.json()["id"])
    assert job.name == "cleanup" and job.payload == {"deep": True}
    assert writer.get(url(space, "/nightly")).json()["lastJobId"] == job.id

    assert writer.delete(url(space, "/nightly")).status_code == 204
    assert writer.get(url(space, "/nightly")).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "* * * * * *"}, "cron"),
        ({"cron": "bogus"}, "cron"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"job": {"payload": 1}}, "job"),
        ({"job": {"name": "x", "idempotencyKey": "k"}}, "job"),
        ({"name": ""}, "name"),
        ({"overlap": "sometimes"}, "overlap"),
    ],
)
def test_the_api_rejects_bad_schedules_with_400(space, writer, change, field):
    response = writer.post(url(space), {**BODY, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert not Schedule.objects.exists()


def test_a_duplicate_name_is_409(space, writer):
    assert writer.post(url(space), BODY, format="json").status_code == 201
    response = writer.post(url(space), BODY, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "schedule_exists"


def test_changes_need_the_schedules_write_scope(space):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, [scopes.READ])}")
    response = client.post(url(space), BODY, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "Missing required scope: schedules:write"
    assert client.get(url(space)).status_code == 200


def test_another_space_gets_404(space, writer):
    other = SpaceFactory()
    make_schedule(other)
    assert writer.get(url(other)).status_code == 404
    assert writer.get(f"/api/v1/spaces/{other.public_id}/schedules/nightly").status_code == 404
    assert (
        writer.post(f"/api/v1/spaces/{other.public_id}/schedules/nightly/trigger").status_code
        == 404
    )
    assert writer.get(url(space, "/nightly")).status_code == 404
