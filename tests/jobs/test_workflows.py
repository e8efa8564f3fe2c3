"""Job dependencies: dependsOn, the blocked status, release on completion, cascades on failure,
retries that bring cancelled children back, the repair step and retention (docs/workflows.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import queries, retention, services, workflows
from jobs.models import Job, JobDependency, JobEvent
from tests.factories import SpaceFactory

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def _create(space, name: str = "step", **data) -> Job:
    job, created = services.create_job(space, {"name": name, **data})
    assert created
    return job


def _run(space, job: Job, result=None) -> Job:
    """Claim JOB by id and complete it with RESULT."""
    claimed = services.claim_job(space, job.pk)
    return services.complete_job(claimed, result, claim_id=claimed.claim_id)


def _fail(space, job: Job, error: str = "boom") -> Job:
    claimed = services.claim_job(space, job.pk)
    return services.fail_job(claimed, error, retry=False, claim_id=claimed.claim_id)


def _status(job: Job) -> str:
    return Job.objects.get(pk=job.pk).status


def _row(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def _url(space) -> str:
    return f"/api/v1/spaces/{space.public_id}/jobs"


# --- create --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_child_waits_blocked_until_its_parent_is_done_and_is_never_polled(space):
    parent = _create(space, "extract")
    child = _create(space, "load", depends_on=[parent.pk])

    stored = _row(child)
    assert (stored.status, stored.parent_count, stored.waiting_parents) == ("blocked", 1, 1)
    assert _row(parent).has_children is True
    created = JobEvent.objects.get(job=child, type="created")
    assert (created.status, created.previous_status) == ("blocked", None)
    polled = services.poll_jobs(space, count=10)
    assert [job.pk for job in polled] == [parent.pk]
    with pytest.raises(services.JobError) as refused:
        services.claim_job(space, child.pk)
    assert refused.value.code == "invalid_transition"


@pytest.mark.django_db
def test_an_array_create_links_items_by_position(api, space):
    body = [
        {"name": "a"},
        {"name": "b", "dependsOn": [0]},
        {"name": "c", "dependsOn": [0, 1], "onParentFailure": "run"},
    ]
    response = api.post(_url(space), body, format="json")

    assert response.status_code == 201, response.content
    a, b, c = (item["id"] for item in response.json())
    assert [item["status"] for item in response.json()] == ["pending", "blocked", "blocked"]
    assert _row(Job(pk=c)).on_parent_failure == "run"
    assert _row(Job(pk=c)).waiting_parents == 2
    edges = set(JobDependency.objects.values_list("parent_id", "child_id"))
    assert edges == {(a, b), (a, c), (b, c)}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ([{"name": "a", "dependsOn": [0]}], ["0", "dependsOn"], "not an earlier item"),
        ([{"name": "a"}, {"name": "b", "dependsOn": [1]}], ["1", "dependsOn"], "earlier"),
        ([{"name": "a", "dependsOn": ["01" + "A" * 24]}], ["0", "dependsOn"], "No job"),
        ({"name": "a", "dependsOn": [0]}, ["dependsOn"], "array create"),
        ({"name": "a", "dependsOn": "01HAAAAAAAAAAAAAAAAAAAAAAA"}, ["dependsOn"], "list"),
        ({"name": "a", "dependsOn": [True]}, ["dependsOn"], "job id"),
        ({"name": "a", "dependsOn": ["short"]}, ["dependsOn"], "job id"),
        ({"name": "a", "dependsOn": list(range(101))}, ["dependsOn"], "At most 100"),
        ({"name": "a", "onParentFailure": "ignore"}, ["onParentFailure"], "valid choice"),
    ],
)
def test_bad_dependencies_are_refused_with_a_400_naming_the_field(api, space, body, where, message):
    response = api.post(_url(space), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    details = response.json()["details"]
    for key in where:
        details = details[key]
    assert message in " ".join(details)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_parent_of_another_space_is_unknown(api, space):
    other = _create(SpaceFactory(), "theirs")

    response = api.post(_url(space), {"name": "mine", "dependsOn": [other.pk]}, format="json")

    assert response.status_code == 400
    assert "No job" in response.json()["details"]["dependsOn"][0]
    assert _row(other).has_children is False


@pytest.mark.django_db
def test_depends_on_with_scheduled_for_is_refused(api, space):
    parent = _create(space)
    body = {"name": "b", "dependsOn": [parent.pk], "scheduledFor": "2099-01-01T00:00:00Z"}

    response = api.post(_url(space), body, format="json")

    assert response.status_code == 400
    assert "scheduledFor" in response.json()["details"]


@pytest.mark.django_db
def test_fan_out_is_capped(space, monkeypatch):
    monkeypatch.setattr(workflows, "MAX_CHILDREN", 2)
    parent = _create(space)
    _create(space, depends_on=[parent.pk])
    _create(space, depends_on=[parent.pk])

    with pytest.raises(services.JobError) as refused:
        services.create_job(space, {"name": "third", "depends_on": [parent.pk]})

    assert refused.value.code == "validation_error"
    assert "more than 2 children" in refused.value.details["dependsOn"][0]
    assert Job.objects.filter(space=space).count() == 3


@pytest.mark.django_db
def test_fan_out_over_the_cap_in_an_array_names_the_item(api, space, monkeypatch):
    monkeypatch.setattr(workflows, "MAX_CHILDREN", 2)
    body = [{"name": "p"}, *({"name": "c", "dependsOn": [0]} for _ in range(3))]

    response = api.post(_url(space), body, format="json")

    assert response.status_code == 400
    assert "more than 2 children" in response.json()["details"]["3"]["dependsOn"][0]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_child_of_finished_parents_starts_at_once_or_is_cancelled(space):
    done = _create(space, "done")
    _run(space, done, {"n": 1})
    dead = _create(space, "dead")
    _fail(space, dead)

    ready = _create(space, "ready", depends_on=[done.pk])
    doomed = _create(space, "doomed", depends_on=[done.pk, dead.pk])
    anyway = _create(space, "anyway", depends_on=[dead.pk], on_parent_failure="run")

    assert _status(ready) == "pending"
    assert _status(anyway) == "pending"
    stored = _row(doomed)
    assert (stored.status, stored.last_error) == ("killed", workflows.PARENT_FAILED)
    types = list(JobEvent.objects.filter(job=doomed).values_list("type", "status"))
    assert types == [("created", "blocked"), ("killed", "killed")]


@pytest.mark.django_db
def test_an_idempotent_repeat_returns_the_job_without_new_links(space):
    parent = _create(space)
    first, _ = services.create_job(
        space, {"name": "c", "idempotency_key": "k", "depends_on": [parent.pk]}
    )
    again, created = services.create_job(
        space, {"name": "c", "idempotency_key": "k", "depends_on": [parent.pk]}
    )

    assert (again.pk, created) == (first.pk, False)
    assert JobDependency.objects.count() == 1


# --- a parent succeeds ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_last_parent_to_complete_releases_the_child_with_their_results(space):
    a = _create(space, "a")
    b = _create(space, "b")
    child = _create(space, "c", depends_on=[a.pk, b.pk])

    _run(space, a, {"rows": 10})
    assert (_status(child), _row(child).waiting_parents) == ("blocked", 1)
    _run(space, b, {"rows": 20})

    assert _status(child) == "pending"
    released = JobEvent.objects.filter(job=child).latest("id")
    assert (released.type, released.previous_status, released.status) == (
        "pending",
        "blocked",
        "pending",
    )
    assert released.data == {"reason": "parents_finished"}
    (claimed,) = services.poll_jobs(space)
    assert claimed.pk == child.pk
    assert claimed.workflow_parents == [
        {"id": a.pk, "name": "a", "status": "completed", "result": {"rows": 10}},
        {"id": b.pk, "name": "b", "status": "completed", "result": {"rows": 20}},
    ]


@pytest.mark.django_db
def test_the_descriptor_carries_parents_and_bounds_their_results(api, space, monkeypatch):
    monkeypatch.setattr(workflows, "PARENT_RESULT_MAX_BYTES", 20)
    small = _create(space, "small")
    big = _create(space, "big")
    child = _create(space, "c", depends_on=[small.pk, big.pk])
    _run(space, small, "ok")
    _run(space, big, {"text": "x" * 100})

    response = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json")

    (descriptor,) = response.json()["jobs"]
    assert descriptor["id"] == child.pk
    assert descriptor["parents"] == [
        {"id": small.pk, "name": "small", "status": "completed", "result": "ok"},
        {
            "id": big.pk,
            "name": "big",
            "status": "completed",
            "result": None,
            "resultTruncated": True,
        },
    ]


@pytest.mark.django_db
def test_a_plain_job_s_descriptor_has_no_parents(api, space):
    _create(space, "plain")

    response = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json")

    assert response.json()["jobs"][0]["parents"] == []


@pytest.mark.django_db
def test_a_batch_complete_releases_children(space):
    a = _create(space, "a")
    b = _create(space, "b")
    child = _create(space, "c", depends_on=[a.pk, b.pk])
    claimed = [services.claim_job(space, a.pk), services.claim_job(space, b.pk)]

    out = services.complete_jobs(space, [(job.pk, job.claim_id, 1) for job in claimed])

    assert all(isinstance(item, Job) for item in out)
    assert _status(child) == "pending"


@pytest.mark.django_db
def test_a_three_level_workflow_runs_level_by_level(space):
    root = _create(space, "root")
    middle = [_create(space, "mid", depends_on=[root.pk]) for _ in range(3)]
    leaf = _create(space, "leaf", depends_on=[job.pk for job in middle])

    _run(space, root)
    assert {_status(job) for job in middle} == {"pending"}
    for job in middle[:2]:
        _run(space, job)
    assert _status(leaf) == "blocked"
    _run(space, middle[2])
    assert _status(leaf) == "pending"


# --- a parent fails ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_dead_parent_cancels_its_children_transitively(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    grandchild = _create(space, "g", depends_on=[child.pk])

    _fail(space, parent)

    for job in (child, grandchild):
        stored = _row(job)
        assert (stored.status, stored.last_error) == ("killed", "parent failed")
        killed = JobEvent.objects.filter(job=job).latest("id")
        assert (killed.type, killed.previous_status, killed.data) == (
            "killed",
            "blocked",
            {"reason": "parent failed"},
        )


@pytest.mark.django_db
def test_a_parent_killed_mid_run_cascades(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    grandchild = _create(space, "g", depends_on=[child.pk])
    claimed = services.claim_job(space, parent.pk)
    services.ack_job(claimed, claim_id=claimed.claim_id)

    services.kill_job(Job(pk=parent.pk, space_id=space.pk), reason="operator")

    assert (_status(parent), _status(child), _status(grandchild)) == ("killed", "killed", "killed")


@pytest.mark.django_db
def test_a_run_child_runs_anyway_with_the_parents_outcomes(space):
    ok = _create(space, "ok")
    bad = _create(space, "bad")
    child = _create(space, "c", depends_on=[ok.pk, bad.pk], on_parent_failure="run")

    _run(space, ok, 1)
    _fail(space, bad, "disk full")

    assert _status(child) == "pending"
    (claimed,) = services.poll_jobs(space)
    assert claimed.workflow_parents == [
        {"id": ok.pk, "name": "ok", "status": "completed", "result": 1},
        {"id": bad.pk, "name": "bad", "status": "dead", "result": None, "error": "disk full"},
    ]


@pytest.mark.django_db
def test_a_job_dead_by_the_execution_deadline_cascades_too(space):
    with time_machine.travel(T0, tick=False):
        parent = _create(space, "p", max_retries=0, timeout_seconds=10)
        child = _create(space, "c", depends_on=[parent.pk])
        claimed = services.claim_job(space, parent.pk)
        services.ack_job(claimed, claim_id=claimed.claim_id)
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        services.rescue_expired()

    assert (_status(parent), _status(child)) == ("dead", "killed")


@pytest.mark.django_db
def test_bulk_kill_cascades(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])

    services.bulk_kill(Job.objects.filter(pk=parent.pk))

    assert _status(child) == "killed"


# --- retries -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retrying_a_dead_parent_brings_cancelled_children_back(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    grandchild = _create(space, "g", depends_on=[child.pk])
    _fail(space, parent)

    services.retry_job(Job(pk=parent.pk, space_id=space.pk))

    for job, waiting in ((child, 1), (grandchild, 1)):
        stored = _row(job)
        assert (stored.status, stored.waiting_parents, stored.last_error) == (
            "blocked",
            waiting,
            "",
        )
        back = JobEvent.objects.filter(job=job).latest("id")
        assert (back.type, back.previous_status, back.status) == ("blocked", "killed", "blocked")
    _run(space, parent)
    assert (_status(child), _status(grandchild)) == ("pending", "blocked")
    _run(space, child)
    assert _status(grandchild) == "pending"


@pytest.mark.django_db
def test_the_dashboard_s_bulk_retry_brings_cancelled_children_back(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    _fail(space, parent)

    services.bulk_retry(Job.objects.filter(pk=parent.pk))

    assert _status(child) == "blocked"


@pytest.mark.django_db
def test_a_child_killed_by_hand_stays_killed_when_the_parent_is_retried(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    services.kill_job(Job(pk=child.pk, space_id=space.pk), reason="not needed")
    _fail(space, parent)

    services.retry_job(Job(pk=parent.pk, space_id=space.pk))

    assert _status(child) == "killed"


@pytest.mark.django_db
def test_a_child_with_another_dead_parent_stays_cancelled(space):
    a = _create(space, "a")
    b = _create(space, "b")
    child = _create(space, "c", depends_on=[a.pk, b.pk])
    _fail(space, a)
    _fail(space, b)

    services.retry_job(Job(pk=a.pk, space_id=space.pk))

    assert _status(child) == "killed"


@pytest.mark.django_db
def test_a_blocked_run_child_waits_again_for_a_retried_parent(space):
    a = _create(space, "a")
    b = _create(space, "b")
    child = _create(space, "c", depends_on=[a.pk, b.pk], on_parent_failure="run")
    _fail(space, a)
    assert _row(child).waiting_parents == 1

    services.retry_job(Job(pk=a.pk, space_id=space.pk))
    assert _row(child).waiting_parents == 2
    _run(space, b)
    _run(space, a)

    assert _status(child) == "pending"


# --- counts, repair, retention -------------------------------------------------------------


@pytest.mark.django_db
def test_blocked_is_counted_like_any_status(space, django_capture_on_commit_callbacks):
    # The sequencer numbers events after commit and moves the space's counts.
    with django_capture_on_commit_callbacks(execute=True):
        parent = _create(space)
        _create(space, depends_on=[parent.pk])
        _create(space, depends_on=[parent.pk])
    space.refresh_from_db()
    assert (space.status_counts["blocked"], space.status_counts["pending"]) == (2, 1)

    with django_capture_on_commit_callbacks(execute=True):
        _run(space, parent)
    space.refresh_from_db()

    assert (space.status_counts["blocked"], space.status_counts["pending"]) == (0, 2)
    assert queries.counts_from_jobs(space.pk) == space.status_counts


@pytest.mark.django_db
def test_the_job_list_filters_blocked(api, space):
    parent = _create(space)
    child = _create(space, depends_on=[parent.pk])

    response = api.get(_url(space), {"status": "blocked"})

    assert response.status_code == 200, response.content
    assert [job["id"] for job in response.json()] == [child.pk]


@pytest.mark.django_db
def test_the_repair_step_releases_a_child_left_blocked_after_a_crash(space):
    with time_machine.travel(T0, tick=False):
        a = _create(space, "a")
        b = _create(space, "b")
        child = _create(space, "c", depends_on=[a.pk, b.pk])
        cancelled = _create(space, "d", depends_on=[b.pk])
        # A crash between the parents' writes and their children's: the parents are done,
        # the children's rows never heard of it.
        Job.objects.filter(pk=a.pk).update(status="completed", completed_at=T0)
        Job.objects.filter(pk=b.pk).update(status="dead", completed_at=T0)
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        assert workflows.repair_blocked() == {"released": 0, "cancelled": 0, "recounted": 0}
    with time_machine.travel(T0 + timedelta(seconds=31), tick=False):
        fixed = workflows.repair_blocked()

    assert fixed == {"released": 0, "cancelled": 2, "recounted": 0}
    assert (_status(child), _status(cancelled)) == ("killed", "killed")


@pytest.mark.django_db
def test_the_repair_step_releases_and_recounts(space):
    with time_machine.travel(T0, tick=False):
        a = _create(space, "a")
        b = _create(space, "b")
        c = _create(space, "c")
        ready = _create(space, "r", depends_on=[a.pk])
        drifted = _create(space, "d", depends_on=[b.pk, c.pk])
        Job.objects.filter(pk=a.pk).update(status="completed", completed_at=T0)
        Job.objects.filter(pk=b.pk).update(status="completed", completed_at=T0)
    with time_machine.travel(T0 + timedelta(seconds=31), tick=False):
        fixed = workflows.repair_blocked()

    assert fixed == {"released": 1, "cancelled": 0, "recounted": 1}
    assert _status(ready) == "pending"
    assert (_status(drifted), _row(drifted).waiting_parents) == ("blocked", 1)
    assert JobEvent.objects.filter(job=ready).latest("id").data == {"reason": "repaired"}


@pytest.mark.django_db
def test_retention_keeps_a_parent_whose_children_still_wait(space):
    space.retention_failed_days = 1
    space.save()
    with time_machine.travel(T0, tick=False):
        a = _create(space, "a")
        b = _create(space, "b")
        child = _create(space, "c", depends_on=[a.pk, b.pk], on_parent_failure="run")
        _fail(space, a)
        plain = _create(space, "plain")
        _fail(space, plain)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        retention.prune_expired()
        assert Job.objects.filter(pk=a.pk).exists()
        assert not Job.objects.filter(pk=plain.pk).exists()
        _run(space, b)
        _run(space, child)
        retention.prune_expired()

    assert not Job.objects.filter(pk=a.pk).exists()


@pytest.mark.django_db
def test_a_retried_child_waits_again_for_parents_not_finished(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    services.kill_job(Job(pk=child.pk, space_id=space.pk), reason="by hand")

    retried = services.retry_job(Job(pk=child.pk, space_id=space.pk))

    assert retried.status == "blocked"
    assert (_status(child), _row(child).waiting_parents) == ("blocked", 1)
    _run(space, parent)
    assert _status(child) == "pending"


@pytest.mark.django_db
def test_a_retried_child_of_a_dead_parent_runs_by_hand(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    _fail(space, parent)

    services.retry_job(Job(pk=child.pk, space_id=space.pk))

    assert _status(child) == "pending"


# --- plain jobs do not pay -----------------------------------------------------------------


def _edge_queries(queries_captured) -> list[str]:
    return [q["sql"] for q in queries_captured if "jobdependency" in q["sql"]]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_plain_job_s_complete_stays_one_statement(space, django_assert_num_queries):
    job = _create(space, "plain")
    claimed = services.claim_job(space, job.pk)

    with django_assert_num_queries(1):
        services.complete_job(claimed, {"ok": 1}, claim_id=claimed.claim_id)

    assert _status(job) == "completed"


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_parent_s_complete_releases_its_children_in_its_own_transaction(space):
    parent = _create(space, "p")
    child = _create(space, "c", depends_on=[parent.pk])
    claimed = services.claim_job(space, parent.pk)

    services.complete_job(claimed, 1, claim_id=claimed.claim_id)

    assert (_status(parent), _status(child)) == ("completed", "pending")


@pytest.mark.django_db
def test_plain_creates_polls_and_completes_never_read_the_edges(space):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        services.create_jobs(space, [{"name": "a"}, {"name": "b"}])
        polled = services.poll_jobs(space, count=2)
        services.complete_jobs(space, [(job.pk, job.claim_id, None) for job in polled])
        (job,) = [services.create_job(space, {"name": "c"})[0]]
        claimed = services.claim_job(space, job.pk)
        services.complete_job(claimed, None, claim_id=claimed.claim_id)

    assert _edge_queries(captured.captured_queries) == []
    assert all(job.workflow_parents == [] for job in polled)


@pytest.mark.django_db
def test_a_child_born_cancelled_takes_its_own_children_of_the_same_request_along(space):
    dead = _create(space, "dead")
    _fail(space, dead)

    results = services.create_jobs(
        space,
        [
            {"name": "doomed", "depends_on": [dead.pk]},
            {"name": "after", "depends_on": [0]},
            {"name": "anyway", "depends_on": [0], "on_parent_failure": "run"},
        ],
    )

    assert [_status(job) for job, _ in results] == ["killed", "killed", "pending"]


@pytest.mark.django_db
def test_the_job_says_how_many_parents_it_still_waits_for(api, space):
    a = _create(space, "a")
    b = _create(space, "b")
    child = _create(space, "c", depends_on=[a.pk, b.pk], on_parent_failure="run")
    _run(space, a)

    body = api.get(f"/api/v1/jobs/{child.pk}").json()

    assert (body["status"], body["parentCount"], body["waitingParents"]) == ("blocked", 2, 1)
    assert body["onParentFailure"] == "run"
