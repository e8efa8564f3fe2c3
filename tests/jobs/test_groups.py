"""Groups with a completion step (docs/workflows.md, "Groups"): the create body's `group`, the
completion job created once when every member has finished, with the members' ids and outcome
counts, retries before and after it fired, the progress events, the repair step, retention and
the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import groups, retention, services
from jobs.models import Job, JobEvent, JobGroup
from tests.factories import SpaceFactory, issue_key

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
GROUP = {"name": "resize-all", "on_complete": {"name": "notify", "payload": {"to": "ops"}}}
API_GROUP = {"name": "resize-all", "onComplete": {"name": "notify", "payload": {"to": "ops"}}}


def _url(space) -> str:
    return f"/api/v1/spaces/{space.public_id}/jobs"


def _members(space, n: int = 3, group: dict | None = None, **extra) -> list[Job]:
    items = [
        {"name": "resize", "payload": {"i": i}, "group": group or GROUP, **extra} for i in range(n)
    ]
    return [job for job, _ in services.create_jobs(space, items)]


def _complete(space, job: Job, result=None) -> Job:
    claimed = services.claim_job(space, job.pk)
    return services.complete_job(claimed, result, claim_id=claimed.claim_id)


def _fail(space, job: Job) -> Job:
    claimed = services.claim_job(space, job.pk)
    return services.fail_job(claimed, "boom", retry=False, claim_id=claimed.claim_id)


def _ref(space, job: Job) -> Job:
    return Job(pk=job.pk, space_id=space.pk)


def _group(job: Job) -> JobGroup:
    return JobGroup.objects.get(pk=Job.objects.get(pk=job.pk).group_id)


def _completions(group: JobGroup) -> list[Job]:
    return list(Job.objects.filter(space_id=group.space_id, name="notify"))


# --- create ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_array_create_makes_one_group_of_its_jobs(api, space):
    body = [{"name": "resize", "group": API_GROUP} for _ in range(3)]

    response = api.post(_url(space), body, format="json")

    assert response.status_code == 201, response.content
    ids = {item["groupId"] for item in response.json()}
    assert len(ids) == 1
    group = JobGroup.objects.get(pk=ids.pop())
    assert (group.name, group.total, group.done, group.fired_at) == ("resize-all", 3, 0, None)
    assert group.on_complete["name"] == "notify"


@pytest.mark.django_db
def test_a_single_create_with_a_group_is_a_group_of_one(api, space):
    response = api.post(_url(space), {"name": "resize", "group": API_GROUP}, format="json")

    assert response.status_code == 201, response.content
    group = JobGroup.objects.get(pk=response.json()["groupId"])
    assert group.total == 1


@pytest.mark.django_db
def test_jobs_of_an_array_without_a_group_are_not_members(api, space):
    body = [{"name": "resize", "group": API_GROUP}, {"name": "other"}]

    answer = api.post(_url(space), body, format="json").json()

    assert "groupId" not in answer[1]
    assert JobGroup.objects.get(pk=answer[0]["groupId"]).total == 1


@pytest.mark.django_db
def test_a_plain_job_has_no_group_in_its_json(api, space):
    job_id = api.post(_url(space), {"name": "plain"}, format="json").json()["id"]

    assert api.get(f"/api/v1/jobs/{job_id}").json()["groupId"] is None


@pytest.mark.django_db
def test_items_carrying_different_groups_are_refused_by_index(api, space):
    other = API_GROUP | {"name": "other"}
    body = [{"name": "a", "group": API_GROUP}, {"name": "b", "group": other}]

    response = api.post(_url(space), body, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {
        "1": {"group": ["Every job of one request carries the same group"]}
    }
    assert not Job.objects.exists()
    assert not JobGroup.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("group", "where"),
    [
        ({"onComplete": {"name": "n"}}, ["name"]),
        ({"name": "", "onComplete": {"name": "n"}}, ["name"]),
        ({"name": "g"}, ["onComplete"]),
        ({"name": "g", "onComplete": "notify"}, ["onComplete"]),
        ({"name": "g", "onComplete": {"payload": {}}}, ["onComplete", "name"]),
        (
            {"name": "g", "onComplete": {"name": "n", "maxRetries": 99}},
            ["onComplete", "maxRetries"],
        ),
        ({"name": "g", "onComplete": {"name": "n", "dependsOn": [0]}}, ["onComplete", "dependsOn"]),
        (
            {"name": "g", "onComplete": {"name": "n", "scheduledFor": "2999-01-01T00:00:00Z"}},
            ["onComplete", "scheduledFor"],
        ),
        (
            {"name": "g", "onComplete": {"name": "n", "idempotencyKey": "k"}},
            ["onComplete", "idempotencyKey"],
        ),
        ({"name": "g", "onComplete": {"name": "n", "payload": [1]}}, ["onComplete", "payload"]),
        (
            {"name": "g", "onComplete": {"name": "n", "payload": {"group": 1}}},
            ["onComplete", "payload"],
        ),
        (
            {"name": "g", "onComplete": {"name": "n", "group": {"name": "x"}}},
            ["onComplete", "group"],
        ),
        ("resize-all", ["non_field_errors"]),
    ],
)
def test_a_bad_group_is_a_400_naming_the_field(api, space, group, where):
    response = api.post(_url(space), {"name": "resize", "group": group}, format="json")

    assert response.status_code == 400, response.content
    details = response.json()["details"]["group"]
    for key in where:
        assert key in details, details
        details = details[key]
    assert not JobGroup.objects.exists()


@pytest.mark.django_db
def test_a_group_nested_in_a_template_is_refused_at_the_first_level(api, space):
    nested = {"name": "g", "onComplete": {"name": "n"}}
    for _ in range(20):
        nested = {"name": "g", "onComplete": {"name": "n", "group": nested}}

    response = api.post(_url(space), {"name": "a", "group": nested}, format="json")

    assert response.status_code == 400
    assert response.json()["details"]["group"]["onComplete"] == {
        "group": ["Not allowed on a completion job"]
    }


@pytest.mark.django_db
def test_a_bad_group_in_an_array_names_the_item(api, space):
    bad = {"name": "g", "onComplete": {"name": "n", "maxRetries": -1}}

    response = api.post(_url(space), [{"name": "a"}, {"name": "b", "group": bad}], format="json")

    assert response.status_code == 400
    assert "maxRetries" in response.json()["details"]["1"]["group"]["onComplete"]


@pytest.mark.django_db
def test_an_idempotent_repeat_makes_no_second_group(space):
    items = [{"name": "a", "idempotency_key": f"k{i}", "group": GROUP} for i in range(2)]
    first = services.create_jobs(space, items)

    again = services.create_jobs(space, items)

    assert [created for _, created in again] == [False, False]
    assert JobGroup.objects.count() == 1
    assert {job.group_id for job, _ in again} == {first[0][0].group_id}


# --- the completion job ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_last_member_to_finish_creates_the_completion_job_once(space):
    a, b, c = _members(space)
    group = _group(a)

    _complete(space, a, {"ok": 1})
    _fail(space, b)
    assert not _completions(group)
    services.kill_job(_ref(space, c), "enough")

    (completion,) = _completions(group)
    group.refresh_from_db()
    assert (group.completed, group.dead, group.killed) == (1, 1, 1)
    assert group.completion_job_id == completion.pk
    assert group.fired_at is not None
    assert completion.status == "pending"
    assert completion.payload == {
        "to": "ops",
        "group": {
            "id": group.pk,
            "name": "resize-all",
            "total": 3,
            "completed": 1,
            "dead": 1,
            "killed": 1,
            "memberIds": sorted([a.pk, b.pk, c.pk]),
            "memberIdsTruncated": False,
        },
    }
    assert completion.group_id is None  # not a member of the group it completes


@pytest.mark.django_db
def test_the_completion_job_takes_the_template_s_settings(space):
    template = {
        "name": "notify",
        "priority": 7,
        "max_retries": 1,
        "timeout_seconds": 60,
        "concurrency_key": "tenant-1",
        "callback_headers": {"X-Secret": "s3cret"},
    }
    (member,) = _members(space, 1, {"name": "g", "on_complete": template})

    _complete(space, member)

    completion = Job.objects.get(name="notify")
    assert (completion.priority, completion.max_retries, completion.timeout_seconds) == (7, 1, 60)
    assert completion.concurrency_key == "tenant-1"
    assert completion.callback_headers == {"X-Secret": "s3cret"}
    # the secret is kept encrypted on the group, never in its plain template
    assert "callback_headers" not in JobGroup.objects.get().on_complete


@pytest.mark.django_db
def test_a_batch_complete_of_every_member_fires_once(space):
    members = _members(space, 4)
    polled = services.poll_jobs(space, count=4)

    services.complete_jobs(space, [(job.pk, job.claim_id, None) for job in polled])

    group = _group(members[0])
    assert (group.completed, len(_completions(group))) == (4, 1)


@pytest.mark.django_db
def test_members_that_die_on_their_deadline_count_as_dead(space):
    with time_machine.travel(T0, tick=False):
        (member,) = _members(space, 1, max_retries=0, timeout_seconds=10)
        services.poll_jobs(space, count=1, ack=True)
    services.sweep(now=T0 + timedelta(seconds=11))

    group = _group(member)
    assert (group.dead, len(_completions(group))) == (1, 1)


@pytest.mark.django_db
def test_a_member_cancelled_by_its_failed_parent_counts_as_killed(space):
    parent, _ = services.create_job(space, {"name": "parent"})
    (member,) = _members(space, 1, depends_on=[parent.pk])
    assert Job.objects.get(pk=member.pk).status == "blocked"

    _fail(space, parent)

    group = _group(member)
    assert (group.killed, len(_completions(group))) == (1, 1)


@pytest.mark.django_db
def test_members_born_cancelled_by_a_dead_parent_fire_the_group_at_create(space):
    parent, _ = services.create_job(space, {"name": "parent"})
    _fail(space, parent)

    members = _members(space, 2, depends_on=[parent.pk])

    group = _group(members[0])
    assert (group.killed, group.total) == (2, 2)
    (completion,) = _completions(group)
    assert completion.payload["group"]["killed"] == 2


@pytest.mark.django_db
def test_bulk_kill_of_every_member_fires_once(space):
    members = _members(space, 3)

    services.bulk_kill(Job.objects.filter(space=space), reason="stop")

    group = _group(members[0])
    assert (group.killed, len(_completions(group))) == (3, 1)


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_retried_before_the_group_fired_is_waited_for_again(space):
    a, b = _members(space, 2)
    _fail(space, a)
    services.retry_job(_ref(space, a))
    group = _group(a)
    assert (group.dead, group.done) == (0, 0)

    _complete(space, b)
    assert not _completions(group)
    _complete(space, a)

    group.refresh_from_db()
    assert (group.completed, group.dead, len(_completions(group))) == (2, 0, 1)


@pytest.mark.django_db
def test_a_fired_group_never_fires_again(space):
    a, b = _members(space, 2)
    _complete(space, a)
    _fail(space, b)
    group = _group(a)
    fired_at = group.fired_at

    services.retry_job(_ref(space, b))
    _complete(space, b)
    services.bulk_retry(Job.objects.filter(pk=a.pk))  # not dead or killed: nothing

    group.refresh_from_db()
    assert len(_completions(group)) == 1
    # closed: its counts are the ones its completion job carried
    assert (group.completed, group.dead, group.fired_at) == (1, 1, fired_at)


# --- the space stream: progress ----------------------------------------------------------------


@pytest.mark.django_db
def test_each_finished_member_writes_a_group_progress_event(space):
    a, b = _members(space, 2)
    group = _group(a)

    _complete(space, a)
    _fail(space, b)

    progress = list(JobEvent.objects.filter(type="group.progress").order_by("id"))
    assert [(e.job_id, e.data["done"], e.data["total"]) for e in progress] == [
        (a.pk, 1, 2),
        (b.pk, 2, 2),
    ]
    assert progress[0].data == {
        "groupId": group.pk,
        "name": "resize-all",
        "done": 1,
        "total": 2,
        "completed": 1,
        "dead": 0,
        "killed": 0,
        "completionJobId": None,
    }
    assert progress[1].data["completionJobId"] == _completions(group)[0].pk
    # it does not move the job's status (the space's counts stay right)
    assert {e.previous_status for e in progress} == {None}


@pytest.mark.django_db
def test_progress_events_reach_the_space_stream_replay(space):
    from jobs import streams

    (member,) = _members(space, 1)
    _complete(space, member)
    streams.publish_space(space.pk)

    stored = JobEvent.objects.filter(type="group.progress").get()
    replayed = streams.stored_space_events(space.pk, space.public_id, 0, 10**9, {}, 100)
    envelopes = [e.space_envelope for e in replayed if e.envelope["type"] == "group.progress"]
    assert [e["seq"] for e in envelopes] == [stored.seq]
    assert envelopes[0]["data"]["done"] == 1
    assert envelopes[0]["data"]["total"] == 1


# --- the locking path --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_member_s_complete_leaves_the_one_statement_path(space):
    (member,) = _members(space, 1)
    claimed = services.claim_job(space, member.pk)
    plain, _ = services.create_job(space, {"name": "plain"})
    plain_claimed = services.claim_job(space, plain.pk)

    services.complete_job(claimed, None, claim_id=claimed.claim_id)

    assert Job.objects.filter(name="notify").count() == 1
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        services.complete_job(plain_claimed, None, claim_id=plain_claimed.claim_id)
    assert len(captured) == 1
    assert "group_id IS NULL" in captured[0]["sql"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_member_s_complete_costs_a_fixed_number_of_statements(
    space, django_assert_max_num_queries
):
    a, b = _members(space, 2)
    claimed_a = services.claim_job(space, a.pk)
    claimed_b = services.claim_job(space, b.pk)

    # the one statement tried (no row: a member), then the locking path: the member's lock,
    # update and event, the group's lock and update, the progress event (and the savepoint
    # of the test's transaction, two more)
    with django_assert_max_num_queries(9):
        services.complete_job(claimed_a, None, claim_id=claimed_a.claim_id)
    # firing adds the template's read, the member ids, the conditional UPDATE, the job and its
    # event
    with django_assert_max_num_queries(14):
        services.complete_job(claimed_b, None, claim_id=claimed_b.claim_id)

    assert _group(a).fired_at is not None


@pytest.mark.django_db
def test_plain_transitions_never_read_the_groups(space):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        services.create_jobs(space, [{"name": "a"}, {"name": "b"}])
        polled = services.poll_jobs(space, count=2)
        services.complete_jobs(space, [(polled[0].pk, polled[0].claim_id, None)])
        services.fail_job(polled[1], "x", retry=False, claim_id=polled[1].claim_id)
        services.retry_job(_ref(space, polled[1]))
        services.kill_job(_ref(space, polled[1]))

    assert not [q["sql"] for q in captured if "jobgroup" in q["sql"]]


# --- repair ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_repair_step_fires_a_group_whose_completion_job_was_never_created(space):
    # given: every member finished but the move that fires was lost (the process died, or an
    # older process completed them in one statement): rows written without the lifecycle
    a, b = _members(space, 2)
    Job.objects.filter(pk=a.pk).update(status="completed")
    Job.objects.filter(pk=b.pk).update(status="dead")
    group = _group(a)
    assert (group.done, group.fired_at) == (0, None)

    # when
    fixed = groups.repair_groups()

    # then
    assert fixed == {"fired": 1}
    group.refresh_from_db()
    (completion,) = _completions(group)
    assert group.completion_job_id == completion.pk
    assert (group.completed, group.dead, group.killed) == (1, 1, 0)
    assert completion.payload["group"]["memberIds"] == sorted([a.pk, b.pk])
    # a second pass finds nothing: exactly once
    assert groups.repair_groups() == {"fired": 0}
    assert len(_completions(group)) == 1


@pytest.mark.django_db
def test_the_repair_step_leaves_groups_with_active_members(space):
    a, b = _members(space, 2)
    Job.objects.filter(pk=a.pk).update(status="completed")

    assert groups.repair_groups() == {"fired": 0}
    assert not _completions(_group(a))


@pytest.mark.django_db
def test_the_repair_step_is_registered_with_the_scheduler():
    from jobs import maintenance

    assert maintenance.steps["jobs.repair_groups"].func is groups.repair_groups


# --- retention ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retention_keeps_members_until_their_group_fired(space):
    space.retention_completed_days = 1
    space.save()
    with time_machine.travel(T0, tick=False):
        a, b = _members(space, 2)
        _complete(space, a)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        retention.prune_expired()
        assert Job.objects.filter(pk=a.pk).exists()
        _complete(space, b)
    with time_machine.travel(T0 + timedelta(days=4), tick=False):
        retention.prune_expired()

    assert not Job.objects.filter(pk__in=[a.pk, b.pk]).exists()
    assert JobGroup.objects.get().fired_at is not None


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_a_group_shows_its_progress(api, space):
    a, b = _members(space, 2)
    _complete(space, a)

    response = api.get(f"/api/v1/spaces/{space.public_id}/groups/{a.group_id}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body | {"createdAt": None} == {
        "id": a.group_id,
        "name": "resize-all",
        "total": 2,
        "done": 1,
        "completed": 1,
        "dead": 0,
        "killed": 0,
        "completionJobId": None,
        "firedAt": None,
        "createdAt": None,
    }
    assert api.get(f"/api/v1/jobs/{a.pk}").json()["groupId"] == a.group_id


@pytest.mark.django_db
def test_get_a_group_of_another_space_or_unknown_is_a_404(api, space, client_for):
    other = SpaceFactory()
    (member,) = _members(other, 1)

    foreign = api.get(f"/api/v1/spaces/{space.public_id}/groups/{member.group_id}")
    unknown = api.get(f"/api/v1/spaces/{space.public_id}/groups/{'0' * 26}")
    malformed = api.get(f"/api/v1/spaces/{space.public_id}/groups/nope")
    other_space = api.get(f"/api/v1/spaces/{other.public_id}/groups/{member.group_id}")

    assert [r.status_code for r in (foreign, unknown, malformed, other_space)] == [404] * 4


@pytest.mark.django_db
def test_get_a_group_needs_the_read_scope(space, client_for):
    (member,) = _members(space, 1)
    worker_only = client_for(issue_key(space, ["jobs:poll"]))

    response = worker_only.get(f"/api/v1/spaces/{space.public_id}/groups/{member.group_id}")

    assert response.status_code == 403
