"""The hot path's shortcuts keep the rules: key cache, batch complete, numbering cost."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job, JobEvent
from spaces import auth
from spaces.models import ApiKey
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_cache():
    auth.clear_cache()
    yield
    auth.clear_cache()


@override_settings(API_KEY_CACHE_SECONDS=1)
def test_it_serves_a_cached_key_without_a_query_and_forgets_it_after_the_ttl(api, space, key):
    url = f"/api/v1/spaces/{space.public_id}/jobs"
    assert api.get(url).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    assert not any("spaces_apikey" in q["sql"] for q in ctx.captured_queries)

    ApiKey.objects.filter(space=space).update(revoked_at=timezone.now())
    # Past the TTL the key is read again and the revocation holds.
    for digest, (_, cached) in list(auth._key_cache.items()):
        auth._key_cache[digest] = (0.0, cached)
    assert api.get(url).status_code == 401


@override_settings(API_KEY_CACHE_SECONDS=1)
def test_each_request_gets_its_own_copy_of_the_cached_key(space, key):
    first = auth.resolve_key(key)
    first.space.name = "changed in one request"
    second = auth.resolve_key(key)
    assert second is not first and second.space is not first.space
    assert second.space.name == space.name


def test_batch_complete_keeps_every_rule_in_one_transaction(api, space):
    running = JobFactory(space=space, status=Job.Status.RUNNING, claim_id="A" * 26)
    delivered = JobFactory(space=space, status=Job.Status.DELIVERED, claim_id="B" * 26)
    killed = JobFactory(space=space, status=Job.Status.KILLED, claim_id="C" * 26)
    pending = JobFactory(space=space, status=Job.Status.PENDING)
    stale = JobFactory(space=space, status=Job.Status.RUNNING, claim_id="D" * 26)
    items = [
        {"id": running.id, "claimId": "A" * 26, "result": {"n": 1}},
        {"id": delivered.id, "claimId": "B" * 26, "result": None},
        {"id": running.id, "claimId": "A" * 26},  # a repeat: already completed
        {"id": killed.id, "claimId": "C" * 26},
        {"id": pending.id},
        {"id": stale.id, "claimId": "E" * 26},
        {"id": "0" * 26},
    ]
    with CaptureQueriesContext(connection) as ctx:
        response = api.post("/api/v1/jobs/complete", items, format="json")
    assert response.status_code == 200
    codes = [r.get("code") or r["status"] for r in response.json()["results"]]
    assert codes == [
        "completed",
        "completed",
        "invalid_transition",
        "job_killed",
        "invalid_transition",
        "stale_claim",
        "not_found",
    ]
    running.refresh_from_db()
    delivered.refresh_from_db()
    assert running.status == "completed" and running.result == {"n": 1}
    assert delivered.status == "completed" and delivered.started_at is not None
    assert JobEvent.objects.filter(type="completed").count() == 2
    # One locking statement and one event insert for the whole batch, not one per item.
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert sum(1 for q in sqls if "jobs_job" in q and "FOR UPDATE" in q) <= 1
    assert sum(1 for q in sqls if q.startswith('INSERT INTO "jobs_jobevent"')) == 1


def test_numbering_after_a_transition_costs_a_bounded_number_of_queries(api, space):
    job = JobFactory(space=space, status=Job.Status.RUNNING, claim_id="A" * 26)
    with CaptureQueriesContext(connection) as ctx:
        response = api.post(
            f"/api/v1/jobs/{job.id}/complete",
            {"result": None},
            format="json",
            HTTP_X_CLAIM_ID="A" * 26,
        )
    assert response.status_code == 200
    assert JobEvent.objects.get(job=job, type="completed").seq is not None
    if connection.vendor == "postgresql":
        assert len(ctx.captured_queries) <= 16, [q["sql"][:80] for q in ctx.captured_queries]
