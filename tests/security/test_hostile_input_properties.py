"""Property-based: arbitrary JSON in every field of every JSON write endpoint, including lone
surrogates, NUL, NaN and ±Infinity, huge and tiny numbers, deep nesting and odd timestamps.

Whatever is sent, the answer is below 500; what is accepted reads back unchanged through the API,
and the job's dashboard page, the jobs list and the admin page keep answering 200. Bounded: a
fixed number of examples per endpoint, no shrinking past a few seconds (CI runs this on
PostgreSQL and on SQLite, in `make test`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job
from spaces import scopes
from tests.factories import issue_key

from .test_hostile_input import same_json

EXAMPLES = 30

characters = st.characters(exclude_categories=())  # surrogates (Cs) included
strings = st.one_of(
    st.text(characters, max_size=20),
    st.text(st.sampled_from(["\x00", "\ud800", "\udfff", "a", "\u00e9", "\U0001f600"]), max_size=6),
)
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, None]) | st.timezones(),
    ).map(lambda d: d.isoformat()),
    st.integers(min_value=-(10**16), max_value=10**16),
    st.floats(),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**130), max_value=10**130),
    st.floats(),  # NaN, ±Infinity, subnormals and the largest doubles included
)
leaves = st.one_of(st.none(), st.booleans(), numbers, strings, timestamps)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, inner):
    value = inner
    for _ in range(depth):
        value = [value]
    return value


values = st.one_of(
    json_values,
    st.builds(nested, st.integers(min_value=50, max_value=200), leaves),
)

PROPERTIES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def dumps(body) -> bytes:
    # What a careless client sends: NaN as NaN, surrogates as \\u escapes.
    try:
        return json.dumps(body, allow_nan=True).encode("ascii")
    except RecursionError:
        return b"[" * 10_000 + b"]" * 10_000


class Site:
    def __init__(self, space, member, staff):
        self.space = space
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, sorted(scopes.ALL))}")
        self.browser = APIClient()
        self.browser.force_login(member)
        self.admin = APIClient()
        self.admin.force_login(staff)

    def send(self, method: str, path: str, body):
        response = self.api.generic(method, path, dumps(body), content_type="application/json")
        assert response.status_code < 500, (path, response.status_code, response.content[:300])
        if response.status_code >= 400:
            assert response.json()["code"], response.content
        return response

    def claimed(self) -> Job:
        services.create_job(self.space, {"name": "prop"})
        jobs = services.poll_jobs(self.space, names=["prop"])
        return jobs[0]

    def job(self, job_id: str) -> dict:
        response = self.api.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.content[:300]
        return response.json()

    def every_reader_answers(self, job_id: str) -> None:
        s = self.space.public_id
        for path in (
            f"/api/v1/jobs/{job_id}",
            f"/api/v1/jobs/{job_id}/logs",
            f"/api/v1/spaces/{s}/jobs",
        ):
            assert self.api.get(path).status_code == 200, path
        for path in (f"/spaces/{s}/", f"/spaces/{s}/jobs/{job_id}"):
            assert self.browser.get(path).status_code == 200, path
        for path in (
            f"/admin/jobs/job/{job_id}/change/",
            "/admin/jobs/jobevent/",
            "/admin/jobs/joblog/",
        ):
            assert self.admin.get(path).status_code == 200, path


@pytest.fixture
def site(cast) -> Site:
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    return Site(cast.space, cast.alice, staff)


def _accepted(response) -> bool:
    return 200 <= response.status_code < 300


@PROPERTIES
@given(value=values)
def test_create_keeps_any_accepted_payload(site, value):
    response = site.send(
        "POST", f"/api/v1/spaces/{site.space.public_id}/jobs", {"name": "p", "payload": value}
    )
    if _accepted(response):
        job_id = response.json()["id"]
        stored = site.job(job_id)["payload"]
        assert same_json(stored, value)
        site.every_reader_answers(job_id)
        # The dashboard's job page and the admin show that same value.
        page = site.browser.get(f"/spaces/{site.space.public_id}/jobs/{job_id}").content.decode()
        shown = json.dumps(stored, indent=2, sort_keys=True, ensure_ascii=False)
        assert escape(shown) in page
        if stored:  # the admin shows null and empty values as its empty-value dash
            admin = site.admin.get(f"/admin/jobs/job/{job_id}/change/").content.decode()
            assert escape(json.dumps(stored, ensure_ascii=False)) in admin


@PROPERTIES
@given(
    field=st.sampled_from(
        [
            "name",
            "priority",
            "maxRetries",
            "timeoutSeconds",
            "scheduledFor",
            "backoff",
            "idempotencyKey",
            "callbackHeaders",
        ]
    ),
    value=values,
)
def test_create_answers_every_field_below_500(site, field, value):
    body = {"name": "p", field: value}
    response = site.send("POST", f"/api/v1/spaces/{site.space.public_id}/jobs", body)
    if _accepted(response):
        job = site.job(response.json()["id"])
        if field == "name":
            assert job["name"] == value
        site.every_reader_answers(job["id"])
    bulk = site.send("POST", f"/api/v1/spaces/{site.space.public_id}/jobs", [body, {"name": "q"}])
    if not _accepted(bulk):
        assert not _accepted(response) or field == "idempotencyKey"


@PROPERTIES
@given(body=values)
def test_any_body_on_the_space_endpoints_is_below_500(site, body):
    s = site.space.public_id
    site.send("POST", f"/api/v1/spaces/{s}/jobs", body)
    site.send("POST", f"/api/v1/spaces/{s}/jobs/poll", body)
    site.send("POST", f"/api/v1/spaces/{s}/schedules", body)
    site.send("PUT", f"/api/v1/spaces/{s}/limits/p", body)
    site.send("POST", "/api/v1/jobs/complete", body)
    site.send("POST", "/api/v1/jobs/fail", body)


@PROPERTIES
@given(
    field=st.sampled_from(["count", "name", "names", "type", "types", "waitSeconds", "ack"]),
    value=values,
)
def test_poll_answers_below_500(site, field, value):
    if field == "waitSeconds" and isinstance(value, int | float) and not isinstance(value, bool):
        value = min(value, 0)  # no long poll in a property test
    site.send("POST", f"/api/v1/spaces/{site.space.public_id}/jobs/poll", {field: value})


@PROPERTIES
@given(
    endpoint=st.sampled_from(
        [
            "ack",
            "progress",
            "checkpoint",
            "event",
            "keepalive",
            "logs",
            "complete",
            "fail",
            "kill",
            "retry",
            "claim",
        ]
    ),
    value=values,
    timestamp=timestamps,
)
def test_worker_calls_keep_what_they_accept(site, endpoint, value, timestamp):
    job = site.claimed()
    claim = job.claim_id
    path = f"/api/v1/jobs/{job.id}/{endpoint}"
    bodies = {
        "ack": {"claimId": claim, "extra": value},
        "progress": {"claimId": claim, "percent": 50, "message": value},
        "checkpoint": {"claimId": claim, "step": value},
        "event": {"claimId": claim, "type": "custom", "data": value},
        "keepalive": {"claimId": claim, "extendSeconds": value},
        "logs": [{"message": "m", "timestamp": timestamp, "attr": value}],
        "complete": {"claimId": claim, "result": value},
        "fail": {"claimId": claim, "error": value, "retry": False},
        "kill": {"reason": value},
        "retry": {"extra": value},
        "claim": {"extra": value},
    }
    if endpoint in ("progress", "checkpoint", "event", "keepalive", "complete", "fail"):
        site.send("POST", f"/api/v1/jobs/{job.id}/ack", {"claimId": claim})
    response = site.send("POST", path, bodies[endpoint])
    if _accepted(response):
        read = site.job(job.id)
        if endpoint == "complete":
            assert same_json(read["result"], value)
        elif endpoint == "fail" and isinstance(value, str):
            assert read["error"] == value[:10_000]
        elif endpoint == "logs":
            (line,) = site.api.get(f"/api/v1/jobs/{job.id}/logs").json()["logs"]
            assert same_json(line["attributes"]["attr"], value)
        elif endpoint == "event":
            response = site.api.get(f"/api/v1/jobs/{job.id}")
            custom = [e for e in response.json().get("events", []) if e["type"] == "custom"]
            if custom:
                assert same_json(custom[-1]["data"], value)
        site.every_reader_answers(job.id)


@PROPERTIES
@given(value=values, timestamp=timestamps)
def test_batch_calls_answer_per_item_below_500(site, value, timestamp):
    job = site.claimed()
    site.send("POST", f"/api/v1/jobs/{job.id}/ack", {"claimId": job.claim_id})
    response = site.send(
        "POST",
        "/api/v1/jobs/complete",
        [
            {"id": job.id, "claimId": job.claim_id, "result": value},
            {"id": "01AAAAAAAAAAAAAAAAAAAAAAAA", "claimId": timestamp},
        ],
    )
    if _accepted(response):
        first = response.json()["results"][0]
        if first["ok"]:
            assert same_json(site.job(job.id)["result"], value)
        site.every_reader_answers(job.id)


@PROPERTIES
@given(
    field=st.sampled_from(["name", "cron", "timezone", "enabled", "overlap", "job", "payload"]),
    value=values,
)
def test_schedules_answer_below_500_and_keep_their_template(site, field, value):
    body = {"name": "prop-schedule", "cron": "@daily", "job": {"name": "n"}}
    if field == "payload":
        body["job"] = {"name": "n", "payload": value}
    else:
        body[field] = value
    response = site.send("POST", f"/api/v1/spaces/{site.space.public_id}/schedules", body)
    if _accepted(response):
        name = response.json()["name"]
        read = site.api.get(f"/api/v1/spaces/{site.space.public_id}/schedules/{name}")
        assert read.status_code == 200
        if field == "payload":
            assert same_json(read.json()["job"]["payload"], value)
        assert site.browser.get(f"/spaces/{site.space.public_id}/schedules/").status_code == 200
        site.api.delete(f"/api/v1/spaces/{site.space.public_id}/schedules/{name}")


@PROPERTIES
@given(field=st.sampled_from(["concurrency", "rate"]), value=values)
def test_limits_answer_below_500(site, field, value):
    response = site.send("PUT", f"/api/v1/spaces/{site.space.public_id}/limits/p", {field: value})
    if _accepted(response):
        assert site.api.get(f"/api/v1/spaces/{site.space.public_id}/limits").status_code == 200
        assert site.browser.get(f"/spaces/{site.space.public_id}/limits/").status_code == 200
