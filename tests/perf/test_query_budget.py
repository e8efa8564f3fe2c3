"""Each worker call keeps to its budget of SQL statements (the key cache warm, numbering on the
sequencer thread as in production), so a later change cannot quietly add a round trip."""

from __future__ import annotations

import pytest
from django.test import override_settings

from jobs import services, streams
from jobs.models import Job
from spaces import auth

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
]

# Round trips per call, BEGIN and COMMIT included (the key cache warm; the numbering and
# fan-out run on the sequencer thread). Create, poll, ack, progress, keepalive and complete
# are one statement each on PostgreSQL (jobs/services.py).
BUDGET = {
    "get": 2,  # the job, its latest events
    "create": 1,  # the job and its event (without an idempotency key)
    "poll": 1,  # limits probe, claim, events: one statement while no per-name limit applies
    "empty poll": 1,
    "ack": 1,
    "progress": 1,
    "keepalive": 1,
    "complete": 1,
    "fail": 5,  # BEGIN, the row lock, the update, the event, COMMIT
}


@pytest.fixture(autouse=True)
def production_shape(settings):
    settings.STREAM_SEQUENCER = "thread"
    auth.clear_cache()
    with override_settings(API_KEY_CACHE_SECONDS=60):
        yield
    assert streams.sequencer.flush(timeout=10)
    auth.clear_cache()


@pytest.fixture
def call(api, django_assert_max_num_queries):
    def run(name: str, method: str, path: str, body=None, **headers):
        with django_assert_max_num_queries(BUDGET[name]):
            response = getattr(api, method)(path, body, format="json", **headers)
        assert response.status_code < 300, (name, response.status_code, response.content)
        return response.json()

    return run


def test_every_worker_call_keeps_to_its_statement_budget(api, space, call):
    jobs_url = f"/api/v1/spaces/{space.public_id}/jobs"
    assert api.get(jobs_url).status_code == 200  # the key is cached from here on
    created = call("create", "post", jobs_url, {"name": "x"})
    call("create", "post", jobs_url, {"name": "y"})
    call("get", "get", f"/api/v1/jobs/{created['id']}")

    (job,) = call("poll", "post", f"{jobs_url}/poll", {"count": 1})["jobs"]
    claim = {"HTTP_X_CLAIM_ID": job["claimId"]}
    one = f"/api/v1/jobs/{job['id']}"
    assert call("ack", "post", f"{one}/ack", None, **claim)["status"] == "running"
    call("progress", "post", f"{one}/progress", {"percent": 5, "message": "m"}, **claim)
    call("keepalive", "post", f"{one}/keepalive", {}, **claim)
    assert call("complete", "post", f"{one}/complete", {"result": 1}, **claim)["status"] == (
        "completed"
    )

    (other,) = call("poll", "post", f"{jobs_url}/poll", {"count": 1})["jobs"]
    failed = call(
        "fail",
        "post",
        f"/api/v1/jobs/{other['id']}/fail",
        {"error": "boom", "retry": False},
        HTTP_X_CLAIM_ID=other["claimId"],
    )
    assert failed["status"] == "dead"
    assert call("empty poll", "post", f"{jobs_url}/poll", {"count": 1})["jobs"] == []
    assert Job.objects.get(pk=job["id"]).status == "completed"


def test_a_stale_claim_is_refused_after_the_one_statement_finds_nothing_to_do(
    api, space, django_assert_max_num_queries
):
    job, _ = services.create_job(space, {"name": "x"})
    (job,) = services.poll_jobs(space)
    assert api.get(f"/api/v1/spaces/{space.public_id}/jobs").status_code == 200  # key cached
    # The one statement writes nothing; the locking path (BEGIN, the row lock, the rollback)
    # says why.
    with django_assert_max_num_queries(4):
        response = api.post(f"/api/v1/jobs/{job.id}/ack", HTTP_X_CLAIM_ID="0" * 26)
    assert response.status_code == 409 and response.json()["code"] == "stale_claim"
    assert Job.objects.get(pk=job.pk).status == "delivered"


def test_a_poll_with_a_limit_on_its_names_takes_the_path_that_honours_it(api, space):
    from jobs.models import NameLimit

    NameLimit.objects.create(space=space, name="x", concurrency=1)
    for _ in range(3):
        services.create_job(space, {"name": "x"})
    url = f"/api/v1/spaces/{space.public_id}/jobs/poll"
    first = api.post(url, {"count": 3}, format="json").json()["jobs"]
    second = api.post(url, {"count": 3}, format="json").json()["jobs"]
    assert len(first) == 1 and second == []
