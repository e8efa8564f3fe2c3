"""Hostile input at the edge: what a client can send must get a 4xx and leave nothing written, and
a value that is accepted must read back unchanged. The reproductions first, then the classes of
input one by one, for every JSON write endpoint. The property-based runs are in
test_hostile_input_properties.py."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job, JobEvent, JobLog
from schedules.models import Schedule
from spaces import scopes
from tests.factories import SpaceFactory, issue_key, stored_channels

SURROGATE = '"x\\udfffy"'  # JSON text of a string holding a lone surrogate


@pytest.fixture
def space(db):
    return SpaceFactory()


@pytest.fixture
def api(space) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space, sorted(scopes.ALL))}")
    return client


@pytest.fixture
def claimed(space):
    """A delivered job: (id, claim id)."""
    services.create_job(space, {"name": "hostile"})
    (job,) = services.poll_jobs(space)
    return job.id, job.claim_id


def post_raw(api: APIClient, path: str, text: str, content_type: str = "application/json"):
    """POST (or "PUT /path") TEXT as it is: surrogates escaped in JSON stay escapes."""
    method, _, bare = path.rpartition(" ")
    return api.generic(method or "POST", bare, text.encode("utf-8"), content_type=content_type)


def written(space) -> tuple[int, int, int]:
    return (
        Job.objects.filter(space=space).count(),
        JobEvent.objects.filter(job__space=space).count(),
        JobLog.objects.filter(job__space=space).count(),
    )


# The reproductions, as they were found.


def test_a_lone_surrogate_in_a_batch_complete_result_is_refused_and_reads_stay_200(
    api, space, claimed
):
    job_id, claim = claimed
    before = written(space)
    body = f'[{{"id":"{job_id}","claimId":"{claim}","result":{SURROGATE}}}]'
    response = post_raw(api, "/api/v1/jobs/complete", body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert "surrogate" in response.json()["error"]
    assert written(space) == before
    assert Job.objects.get(pk=job_id).status == Job.Status.DELIVERED
    assert api.get(f"/api/v1/spaces/{space.public_id}/jobs").status_code == 200
    assert api.get(f"/api/v1/jobs/{job_id}").status_code == 200


def test_a_log_line_dated_in_year_one_is_refused(api, space, claimed):
    job_id, _ = claimed
    response = post_raw(
        api,
        f"/api/v1/jobs/{job_id}/logs",
        '[{"message":"e","timestamp":"0001-01-01T00:00:00+01:00"}]',
    )
    assert response.status_code == 400, response.content
    assert "timestamp" in json.dumps(response.json()["details"])
    assert not JobLog.objects.filter(job_id=job_id).exists()
    assert api.get(f"/api/v1/jobs/{job_id}/logs").status_code == 200


def test_a_cron_expression_that_never_fires_is_refused(api, space):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/schedules",
        {"name": "f", "cron": "0 0 30 2 *", "job": {"name": "x"}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "cron" in response.json()["details"]
    assert not Schedule.objects.filter(space=space).exists()


def test_checkpoint_refuses_a_stale_claim_in_the_body(api, space, claimed):
    job_id, _ = claimed
    response = api.post(
        f"/api/v1/jobs/{job_id}/checkpoint",
        {"step": 3, "claimId": "01AAAAAAAAAAAAAAAAAAAAAAAA"},
        format="json",
    )
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "stale_claim"
    assert not JobEvent.objects.filter(job_id=job_id, type="checkpoint").exists()


# Each class of input, on each JSON write endpoint.


def write_endpoints(space, job_id: str, claim: str) -> list[tuple[str, str]]:
    """(path, a body template with {value} where a hostile value goes) for every JSON write."""
    s = space.public_id
    return [
        (f"/api/v1/spaces/{s}/jobs", '{{"name":"n","payload":{{"v":{value}}}}}'),
        (f"/api/v1/spaces/{s}/jobs", '[{{"name":"n","payload":{value}}}]'),
        (f"/api/v1/spaces/{s}/jobs/poll", '{{"count":1,"name":{value}}}'),
        (f"/api/v1/jobs/{job_id}/ack", '{{"claimId":"{claim}","x":{value}}}'),
        (
            f"/api/v1/jobs/{job_id}/progress",
            '{{"claimId":"{claim}","percent":5,"message":{value}}}',
        ),
        (f"/api/v1/jobs/{job_id}/event", '{{"claimId":"{claim}","type":"t","data":{value}}}'),
        (f"/api/v1/jobs/{job_id}/logs", '[{{"message":"m","attr":{value}}}]'),
        (f"/api/v1/jobs/{job_id}/checkpoint", '{{"claimId":"{claim}","step":{value}}}'),
        (f"/api/v1/jobs/{job_id}/keepalive", '{{"claimId":"{claim}","x":{value}}}'),
        (f"/api/v1/jobs/{job_id}/fail", '{{"claimId":"{claim}","error":{value}}}'),
        (f"/api/v1/jobs/{job_id}/complete", '{{"claimId":"{claim}","result":{value}}}'),
        ("/api/v1/jobs/complete", '[{{"id":"{job_id}","claimId":"{claim}","result":{value}}}]'),
        ("/api/v1/jobs/fail", '[{{"id":"{job_id}","claimId":"{claim}","error":{value}}}]'),
        (f"/api/v1/jobs/{job_id}/kill", '{{"reason":{value}}}'),
        (
            f"/api/v1/spaces/{s}/schedules",
            '{{"name":"s","cron":"@daily","job":{{"name":"n","payload":{value}}}}}',
        ),
        (f"/api/v1/jobs/{job_id}/claim", '{{"x":{value}}}'),
        (f"/api/v1/jobs/{job_id}/retry", '{{"x":{value}}}'),
        (f"PUT /api/v1/spaces/{s}/limits/n", '{{"concurrency":2,"x":{value}}}'),
    ]


HOSTILE = {
    "lone surrogate": SURROGATE,
    "lone surrogate in a key": '{"\\ud800":1}',
    "NUL": '"a\\u0000b"',
    "NUL in a key": '{"a\\u0000":1}',
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "a number that parses to infinity": "1e400",
    "an integer of 5,000 digits": "9" * 5000,
    "nesting 70 deep": "[" * 70 + "]" * 70,
    "nesting 100,000 deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_every_json_write_refuses_each_class_with_400_and_writes_nothing(api, space, claimed, kind):
    job_id, claim = claimed
    before = written(space)
    schedules = Schedule.objects.filter(space=space).count()
    job_before = Job.objects.values().get(pk=job_id)
    for path, template in write_endpoints(space, job_id, claim):
        body = template.format(value=HOSTILE[kind], job_id=job_id, claim=claim)
        response = post_raw(api, path, body)
        assert response.status_code == 400, (path, response.status_code, response.content[:300])
        assert response.json()["code"] == "parse_error", (path, response.content[:300])
    assert written(space) == before
    assert Schedule.objects.filter(space=space).count() == schedules
    assert Job.objects.values().get(pk=job_id) == job_before


def test_ndjson_logs_refuse_each_class_with_the_line_number(api, space, claimed):
    job_id, _ = claimed
    for kind, value in HOSTILE.items():
        if len(value) > 1000:
            continue
        body = '{"message":"fine"}\n{"message":"m","attr":' + value + "}\n"
        response = post_raw(api, f"/api/v1/jobs/{job_id}/logs", body, "application/x-ndjson")
        assert response.status_code == 400, (kind, response.content)
        assert "line 2" in response.json()["error"], (kind, response.content)
    assert not JobLog.objects.filter(job_id=job_id).exists()


def test_a_body_over_the_cap_is_413_on_every_json_write(api, space, claimed, settings):
    settings.API_MAX_BODY_BYTES = 1000
    job_id, claim = claimed
    before = written(space)
    big = json.dumps("x" * 2000)
    for path, template in write_endpoints(space, job_id, claim):
        response = post_raw(api, path, template.format(value=big, job_id=job_id, claim=claim))
        assert response.status_code == 413, (path, response.status_code)
        assert response.json()["code"] == "payload_too_large"
    assert written(space) == before


# Timestamps: the accepted range is 1970-01-01T00:00:00Z up to (not including)
# 9999-01-01T00:00:00Z, whatever the offset.

OUT_OF_RANGE = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:00:00-05:00",
    "9999-01-01T00:00:00Z",
    -1,
    10**20,
    1e300,
]


@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=str)
def test_log_timestamps_outside_the_range_are_refused(api, space, claimed, value):
    job_id, _ = claimed
    response = api.post(
        f"/api/v1/jobs/{job_id}/logs", [{"message": "m", "timestamp": value}], format="json"
    )
    assert response.status_code == 400, response.content
    assert "1970" in json.dumps(response.json()["details"])
    assert not JobLog.objects.filter(job_id=job_id).exists()


@pytest.mark.parametrize("value", OUT_OF_RANGE[:5], ids=str)
def test_scheduled_for_outside_the_range_is_refused(api, space, value):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs",
        {"name": "later", "scheduledFor": value},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "scheduledFor" in response.json()["details"]
    assert not Job.objects.filter(space=space).exists()


def test_timestamps_at_the_edges_of_the_range_are_kept(api, space, claimed):
    job_id, _ = claimed
    lines = [
        {"message": "first", "timestamp": "1970-01-01T00:00:00Z"},
        {"message": "last", "timestamp": "9998-12-31T23:59:59+00:00"},
    ]
    response = api.post(f"/api/v1/jobs/{job_id}/logs", lines, format="json")
    assert response.status_code == 202, response.content
    logs = api.get(f"/api/v1/jobs/{job_id}/logs").json()["logs"]
    assert [line["timestamp"] for line in logs] == [
        "1970-01-01T00:00:00Z",
        "9998-12-31T23:59:59Z",
    ]


# Values that parse but cannot work.


def test_a_schedule_reports_every_field_error_at_once(api, space):
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/schedules",
        {"name": "", "cron": "0 0 31 4 *", "timezone": "Mars/Olympus", "job": {"name": ""}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert {"name", "cron", "timezone", "job"} <= set(response.json()["details"])


@pytest.mark.parametrize("body", [{"concurrency": 0}, {"rate": 0}, {"concurrency": -1}])
def test_a_limit_that_would_stop_a_name_forever_is_refused(api, space, body):
    response = api.put(f"/api/v1/spaces/{space.public_id}/limits/n", body, format="json")
    assert response.status_code == 400, response.content


def test_accepted_values_read_back_unchanged(api, space):
    payload = {
        "emoji": "\U0001f600 \u00e9\u0301 \u200b \ufeff",
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "big": 10**99,
        "neg": -(2**63),
        "nested": json.loads("[" * 60 + "1" + "]" * 60),
        "": "empty key",
        "when": timezone.now().isoformat(),
    }
    response = api.post(
        f"/api/v1/spaces/{space.public_id}/jobs",
        {"name": "round", "payload": payload},
        format="json",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert same_json(api.get(f"/api/v1/jobs/{job_id}").json()["payload"], payload)
    (job,) = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json").json()[
        "jobs"
    ]
    assert same_json(job["payload"], payload)


def same_json(a, b) -> bool:
    """Equal as JSON values: numbers by value as a JSON client reads them (PostgreSQL writes
    1.7976931348623157e308 back in plain digits, and 1e20 as 100000000000000000000)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and bool not in (type(a), type(b)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return float(a) == float(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("checkpoint", lambda big: {"state": big}),
        ("complete", lambda big: {"result": big}),
        ("event", lambda big: {"type": "t", "data": big}),
    ],
)
def test_json_over_a_mebibyte_in_a_field_is_400_as_docs_api_says(api, space, endpoint, body):
    job = services.create_job(space, {"name": "big"})[0]
    (job,) = services.poll_jobs(space, names=["big"])
    services.ack_job(job, claim_id=job.claim_id)
    big = "x" * (1024 * 1024 + 1)
    response = api.post(
        f"/api/v1/jobs/{job.id}/{endpoint}",
        body(big),
        format="json",
        HTTP_X_CLAIM_ID=job.claim_id,
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "validation_error"
    assert Job.objects.get(pk=job.id).status == Job.Status.RUNNING


# Management commands: bytes that are not UTF-8 on a command line arrive as lone surrogates.


@pytest.mark.parametrize(
    "argv",
    [
        ["issue_token", "--space", "\udcff"],
        ["issue_token", "--space", "main", "--name", "key\udcff"],
        ["pause_space", "\udcff"],
        ["resume_space", "sp\udcffce"],
        ["space_settings", "--space", "main", "--push-url", "http://a\udcff.example/"],
        ["space_settings", "--space", "main", "--push-names", "a\x00b"],
    ],
)
def test_a_command_line_that_is_not_utf8_is_a_command_error(space, argv):
    from django.core.management import CommandError, call_command

    before = (space.paused_at, stored_channels(space).push_url)
    with pytest.raises(CommandError, match="not valid Unicode|NUL"):
        call_command(*argv)
    space.refresh_from_db()
    assert (space.paused_at, stored_channels(space).push_url) == before
