from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from jobs.models import Job, NameLimit
from schedules import services as schedule_services
from schedules.models import Schedule


def _list_url(space) -> str:
    return reverse("dashboard-schedules", kwargs={"public_id": space.public_id})


def _url(space, name: str, action: str = "") -> str:
    route = f"dashboard-schedule-{action}" if action else "dashboard-schedule"
    return reverse(route, kwargs={"public_id": space.public_id, "name": name})


def _limits_url(space) -> str:
    return reverse("dashboard-limits", kwargs={"public_id": space.public_id})


def _form(**overrides) -> dict:
    data = {
        "name": "nightly-report",
        "cron": "0 9 * * *",
        "timezone": "Europe/Berlin",
        "job_name": "report.build",
        "payload": '{"kind": "daily"}',
        "max_retries": "2",
        "timeout_seconds": "600",
        "priority": "5",
        "overlap": "skip",
        "enabled": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- create ----------------------------------------------------------------------------------


def test_the_form_creates_a_schedule_with_its_next_run(client, cast):
    client.force_login(cast.alice)
    with time_machine.travel(datetime(2026, 3, 2, 6, 0, tzinfo=UTC), tick=False):
        response = client.post(_list_url(cast.space), _form())

    assert response.status_code == 302
    assert response["Location"] == _url(cast.space, "nightly-report")
    schedule = Schedule.objects.get(space=cast.space, name="nightly-report")
    # 09:00 in Berlin in winter is 08:00 UTC.
    assert schedule.next_run_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert schedule.timezone == "Europe/Berlin"
    assert schedule.overlap == "skip"
    assert schedule.enabled is True
    assert schedule.job_template == {
        "name": "report.build",
        "payload": {"kind": "daily"},
        "maxRetries": 2,
        "timeoutSeconds": 600,
        "priority": 5,
    }


def test_a_schedule_made_in_the_dashboard_fires_like_one_made_by_the_api(client, cast):
    client.force_login(cast.alice)
    with time_machine.travel(datetime(2026, 3, 2, 6, 0, tzinfo=UTC), tick=False):
        client.post(_list_url(cast.space), _form(overlap="allow"))
    with time_machine.travel(datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC), tick=False):
        assert schedule_services.tick() == 1

    job = Job.objects.get(space=cast.space)
    assert (job.name, job.payload, job.max_retries, job.priority) == (
        "report.build",
        {"kind": "daily"},
        2,
        5,
    )
    assert job.idempotency_key == "schedule:nightly-report:2026-03-02T08:00:00Z"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron", "61 * * * *", "Not a valid cron expression"),
        ("cron", "* * * * * *", "Use five fields"),
        ("timezone", "Mars/Olympus", "Unknown time zone"),
        ("name", "has space", "This value does not match the required pattern"),
        ("payload", "{not json", "Not valid JSON"),
        ("max_retries", "99", "Ensure this value is less than or equal to 25"),
        ("timeout_seconds", "0", "Ensure this value is greater than or equal to 1"),
        ("job_name", "x" * 201, "at most 200 characters"),
    ],
)
def test_bad_input_shows_a_form_error_and_creates_nothing(client, cast, field, value, message):
    client.force_login(cast.alice)
    response = client.post(_list_url(cast.space), _form(**{field: value}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Schedule.objects.filter(space=cast.space).exists()


def test_every_field_error_shows_at_once(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        _list_url(cast.space),
        _form(
            name="has space",
            cron="0 0 30 2 *",
            timezone="Mars/Olympus",
            payload='{"v": NaN}',
            max_retries="99",
        ),
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"name", "cron", "timezone", "payload", "max_retries"}
    assert "never fires" in errors["cron"][0]
    assert "NaN" in errors["payload"][0]
    assert not Schedule.objects.filter(space=cast.space).exists()


@pytest.mark.parametrize(
    "payload",
    [
        '{"v": "x\\udfffy"}',
        '{"\\ud800": 1}',
        '{"v": "a\\u0000"}',
        "[Infinity]",
        "[" * 100 + "]" * 100,
    ],
)
def test_a_payload_json_cannot_carry_is_a_form_error(client, cast, payload):
    client.force_login(cast.alice)
    response = client.post(_list_url(cast.space), _form(payload=payload))

    assert response.status_code == 200
    assert "Not valid JSON" in str(response.context["form"].errors["payload"])
    assert not Schedule.objects.filter(space=cast.space).exists()


def test_a_taken_name_is_a_form_error(client, cast, schedule):
    client.force_login(cast.alice)
    response = client.post(_list_url(cast.space), _form(name=schedule.name))

    assert response.status_code == 200
    assert "already has a schedule with this name" in response.content.decode()
    assert Schedule.objects.filter(space=cast.space).count() == 1


def test_the_same_name_in_another_space_is_fine(client, cast):
    Schedule.objects.create(
        space=cast.other_space, name="nightly-report", cron="@daily", job_template={"name": "x"}
    )
    client.force_login(cast.alice)
    assert client.post(_list_url(cast.space), _form()).status_code == 302


# --- list and detail -------------------------------------------------------------------------


def test_the_list_shows_schedules_and_links_the_last_job(client, cast, schedule):
    job = schedule_services.trigger_now(schedule)
    client.force_login(cast.bob)
    response = client.get(_list_url(cast.space))

    body = response.content.decode()
    assert response.status_code == 200
    assert "hourly-sync" in body and "@hourly" in body and "sync.run" in body
    assert reverse("dashboard-job", args=[cast.space.public_id, job.id]) in body


def test_the_detail_page_shows_the_next_five_runs(client, cast, schedule):
    client.force_login(cast.bob)
    with time_machine.travel(datetime(2026, 5, 1, 10, 30, tzinfo=UTC), tick=False):
        response = client.get(_url(cast.space, schedule.name))

    body = response.content.decode()
    assert response.status_code == 200
    for hour in (11, 12, 13, 14, 15):
        assert f"2026-05-01 {hour}:00" in body
    assert "2026-05-01 16:00" not in body


def test_a_member_sees_schedules_but_gets_no_forms_and_cannot_create(client, cast, schedule):
    client.force_login(cast.bob)
    page = client.get(_list_url(cast.space)).content.decode()
    assert "hourly-sync" in page
    assert "Create schedule" not in page

    assert client.post(_list_url(cast.space), _form()).status_code == 403
    assert client.post(_url(cast.space, schedule.name, "trigger")).status_code == 403
    assert (
        client.post(_url(cast.space, schedule.name, "delete"), {"confirm": "yes"}).status_code
        == 403
    )
    assert Schedule.objects.filter(space=cast.space).count() == 1
    assert not Job.objects.filter(space=cast.space).exists()


@pytest.mark.parametrize("action", ["", "pause", "resume", "trigger", "delete"])
def test_a_member_of_another_org_gets_404(client, cast, schedule, action):
    client.force_login(cast.charlie)
    if not action:
        assert client.get(_url(cast.space, schedule.name)).status_code == 404
        assert client.get(_list_url(cast.space)).status_code == 404
        assert client.post(_list_url(cast.space), _form()).status_code == 404
    response = client.post(_url(cast.space, schedule.name, action), {"confirm": "yes"})

    assert response.status_code == 404
    schedule.refresh_from_db()
    assert schedule.enabled is True
    assert not Job.objects.filter(space=cast.space).exists()


def test_another_space_s_schedule_is_not_found_through_my_space(client, cast):
    Schedule.objects.create(
        space=cast.other_space, name="theirs", cron="@daily", job_template={"name": "x"}
    )
    client.force_login(cast.alice)
    assert client.get(_url(cast.space, "theirs")).status_code == 404
    assert client.post(_url(cast.space, "theirs", "trigger")).status_code == 404


# --- edit and actions ------------------------------------------------------------------------


def test_editing_changes_the_schedule_and_keeps_template_keys_the_form_does_not_show(
    client, cast, schedule
):
    schedule.job_template["backoff"] = {"type": "fixed", "delaySeconds": 5}
    schedule.save()
    client.force_login(cast.alice)
    with time_machine.travel(datetime(2026, 5, 1, 10, 30, tzinfo=UTC), tick=False):
        response = client.post(
            _url(cast.space, schedule.name),
            _form(name="hourly-sync", cron="*/15 * * * *", timezone="UTC", job_name="sync.run"),
        )

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "*/15 * * * *"
    assert schedule.next_run_at == datetime(2026, 5, 1, 10, 45, tzinfo=UTC)
    assert schedule.job_template["backoff"] == {"type": "fixed", "delaySeconds": 5}
    assert schedule.job_template["payload"] == {"kind": "daily"}


def test_a_bad_edit_shows_the_error_and_changes_nothing(client, cast, schedule):
    client.force_login(cast.alice)
    response = client.post(_url(cast.space, schedule.name), _form(name="hourly-sync", cron="bad"))

    assert response.status_code == 200
    assert "Use five fields" in response.content.decode()
    schedule.refresh_from_db()
    assert schedule.cron == "@hourly"


def test_renaming_redirects_to_the_new_name(client, cast, schedule):
    client.force_login(cast.alice)
    response = client.post(_url(cast.space, schedule.name), _form(name="renamed"))
    assert response["Location"] == _url(cast.space, "renamed")
    assert Schedule.objects.filter(space=cast.space).get().name == "renamed"


def test_trigger_now_creates_a_job_and_opens_it(client, cast, schedule):
    client.force_login(cast.alice)
    next_run = schedule.next_run_at
    response = client.post(_url(cast.space, schedule.name, "trigger"))

    job = Job.objects.get(space=cast.space)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard-job", args=[cast.space.public_id, job.id])
    assert job.name == "sync.run"
    assert job.idempotency_key.startswith("schedule:hourly-sync:manual:")
    schedule.refresh_from_db()
    assert schedule.last_job_id == job.id
    assert schedule.next_run_at == next_run


def test_trigger_with_a_template_that_no_longer_validates_shows_an_error(client, cast, schedule):
    Schedule.objects.filter(pk=schedule.pk).update(job_template={"name": ""})
    client.force_login(cast.alice)
    response = client.post(_url(cast.space, schedule.name, "trigger"), follow=True)

    assert response.status_code == 200
    assert "Could not run" in response.content.decode()
    assert not Job.objects.filter(space=cast.space).exists()


def test_pause_and_resume(client, cast, schedule):
    client.force_login(cast.alice)
    client.post(_url(cast.space, schedule.name, "pause"))
    schedule.refresh_from_db()
    assert schedule.enabled is False
    # A paused schedule fires nothing, even when its tick is due.
    with time_machine.travel(datetime(2100, 1, 1, tzinfo=UTC), tick=False):
        assert schedule_services.tick() == 0

    with time_machine.travel(datetime(2026, 5, 1, 10, 30, tzinfo=UTC), tick=False):
        client.post(_url(cast.space, schedule.name, "resume"))
    schedule.refresh_from_db()
    assert schedule.enabled is True
    assert schedule.next_run_at == datetime(2026, 5, 1, 11, 0, tzinfo=UTC)


def test_pause_and_resume_need_post(client, cast, schedule):
    client.force_login(cast.alice)
    assert client.get(_url(cast.space, schedule.name, "pause")).status_code == 405
    assert client.get(_url(cast.space, schedule.name, "delete")).status_code == 405
    schedule.refresh_from_db()
    assert schedule.enabled is True


def test_delete_asks_first_then_deletes(client, cast, schedule):
    client.force_login(cast.alice)
    ask = client.post(_url(cast.space, schedule.name, "delete"))
    assert ask.status_code == 200
    assert "Delete schedule" in ask.content.decode()
    assert Schedule.objects.filter(pk=schedule.pk).exists()

    done = client.post(_url(cast.space, schedule.name, "delete"), {"confirm": "yes"})
    assert done.status_code == 302
    assert not Schedule.objects.filter(pk=schedule.pk).exists()


def test_actions_need_the_csrf_token(cast, schedule):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.alice)
    assert client.post(_url(cast.space, schedule.name, "trigger")).status_code == 403
    assert (
        client.post(_limits_url(cast.space), {"name": "a", "concurrency": "1"}).status_code == 403
    )
    assert not Job.objects.exists()
    assert not NameLimit.objects.exists()


def test_names_and_templates_are_escaped(client, cast):
    Schedule.objects.create(
        space=cast.space,
        name="xss",
        cron="@daily",
        job_template={"name": "<script>alert(1)</script>", "payload": {"a": "<b>"}},
    )
    client.force_login(cast.alice)
    for url in (_list_url(cast.space), _url(cast.space, "xss")):
        body = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in body
        assert "&lt;script&gt;" in body


# --- limits ----------------------------------------------------------------------------------


def test_the_limits_form_sets_changes_and_removes_a_limit(client, cast):
    client.force_login(cast.alice)
    response = client.post(_limits_url(cast.space), {"name": "img.resize", "concurrency": "3"})
    assert response.status_code == 302
    limit = NameLimit.objects.get(space=cast.space, name="img.resize")
    assert (limit.concurrency, limit.rate) == (3, None)

    client.post(_limits_url(cast.space), {"name": "img.resize", "concurrency": "", "rate": "0.5"})
    limit.refresh_from_db()
    assert (limit.concurrency, limit.rate) == (None, 0.5)

    client.post(_limits_url(cast.space), {"op": "remove", "name": "img.resize"})
    assert not NameLimit.objects.filter(space=cast.space).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a", "concurrency": "0"}, "greater than or equal to 1"),
        ({"name": "a", "concurrency": "1.5"}, "Enter a whole number"),
        ({"name": "a", "rate": "-1"}, "greater than or equal to 0.001"),
        ({"name": "a", "rate": "inf"}, "Enter a number"),
        ({"name": "a"}, "Set a concurrency, a rate or both"),
        ({"name": "", "concurrency": "1"}, "This field is required"),
        ({"name": "x" * 201, "concurrency": "1"}, "at most 200 characters"),
    ],
)
def test_bad_limits_are_form_errors(client, cast, data, message):
    client.force_login(cast.alice)
    response = client.post(_limits_url(cast.space), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not NameLimit.objects.exists()


def test_the_limits_page_shows_what_is_in_flight(client, cast):
    from jobs import flow
    from jobs import services as job_services

    flow.set_limit(cast.space, "img.resize", concurrency=5, rate=None)
    for _ in range(3):
        job_services.create_job(cast.space, {"name": "img.resize", "payload": {}})
    job_services.poll_jobs(cast.space, count=2)
    client.force_login(cast.bob)
    response = client.get(_limits_url(cast.space))

    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["rows"][0].in_flight == 2
    assert "img.resize" in body
    assert "Save limit" not in body  # a member sees, does not change


def test_members_cannot_change_limits_and_outsiders_get_404(client, cast):
    client.force_login(cast.bob)
    assert (
        client.post(_limits_url(cast.space), {"name": "a", "concurrency": "1"}).status_code == 403
    )
    client.force_login(cast.charlie)
    assert client.get(_limits_url(cast.space)).status_code == 404
    assert (
        client.post(_limits_url(cast.space), {"name": "a", "concurrency": "1"}).status_code == 404
    )
    assert not NameLimit.objects.exists()


def test_the_edit_link_fills_the_form(client, cast):
    from jobs import flow

    flow.set_limit(cast.space, "img.resize", concurrency=4, rate=2.5)
    client.force_login(cast.alice)
    response = client.get(_limits_url(cast.space), {"edit": "img.resize"})
    form = response.context["form"]
    assert form.initial == {
        "name": "img.resize",
        "concurrency": 4,
        "rate": 2.5,
        "key_concurrency": None,
        "key_rate": None,
    }


def test_a_row_with_a_broken_cron_still_renders(client, cast, schedule):
    Schedule.objects.filter(pk=schedule.pk).update(cron="not cron", timezone="Nowhere/Land")
    client.force_login(cast.alice)
    assert client.get(_url(cast.space, schedule.name)).status_code == 200
    assert client.get(_list_url(cast.space)).status_code == 200


def test_the_next_runs_are_also_shown_in_the_schedule_s_own_zone(client, cast, schedule):
    Schedule.objects.filter(pk=schedule.pk).update(cron="0 9 * * *", timezone="Europe/Berlin")
    client.force_login(cast.bob)
    with time_machine.travel(datetime(2026, 3, 27, 12, 0, tzinfo=UTC), tick=False):
        body = client.get(_url(cast.space, schedule.name)).content.decode()

    # Daylight saving starts on 29 March: 09:00 in Berlin moves from 08:00 to 07:00 UTC.
    assert "Sat 2026-03-28 08:00" in body and "Sat 2026-03-28 09:00 CET" in body
    assert "Sun 2026-03-29 07:00" in body and "Sun 2026-03-29 09:00 CEST" in body
