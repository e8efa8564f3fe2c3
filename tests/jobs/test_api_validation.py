"""Every field rule, error shapes, scopes, shorthands and cross-space isolation."""

from __future__ import annotations

import gzip
import json

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, JobEvent
from spaces import scopes
from tests.factories import issue_key


def url(space) -> str:
    return f"/api/v1/spaces/{space.public_id}/jobs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "maxRetries": -1}, "maxRetries"),
        ({"name": "a", "maxRetries": 26}, "maxRetries"),
        ({"name": "a", "maxRetries": "3"}, "maxRetries"),
        ({"name": "a", "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"name": "a", "timeoutSeconds": 86401}, "timeoutSeconds"),
        ({"name": "a", "priority": 1.5}, "priority"),
        ({"name": "a", "priority": True}, "priority"),
        ({"name": "a", "scheduledFor": "tomorrow"}, "scheduledFor"),
        ({"name": "a", "callbackUrl": "ftp://example.com/x"}, "callbackUrl"),
        ({"name": "a", "callbackHeaders": {"X-Token": 5}}, "callbackHeaders"),
        ({"name": "a", "callbackHeaders": ["a"]}, "callbackHeaders"),
        ({"name": "a", "backoff": {"type": "linear"}}, "backoff"),
        ({"name": "a", "backoff": {"delaySeconds": -1}}, "backoff"),
        ({"name": "a", "idempotencyKey": ""}, "idempotencyKey"),
        ({"name": "a", "idempotencyKey": "k" * 201}, "idempotencyKey"),
    ],
)
def test_create_rejects_bad_fields(api, space, body, field):
    response = api.post(url(space), body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "validation_error" and data["error"]
    assert field in data["details"]
    assert Job.objects.count() == 0


def test_create_accepts_every_field_at_its_limits(api, space):
    body = {
        "name": "x" * 200,
        "payload": {"nested": [1, 2, {"a": None}]},
        "maxRetries": 25,
        "timeoutSeconds": 86400,
        "priority": -7,
        "callbackUrl": "https://example.com/hook",
        "callbackHeaders": {"Authorization": "Bearer t"},
        "backoff": {"type": "fixed", "delaySeconds": 5, "maxDelaySeconds": 60, "jitter": False},
    }
    response = api.post(url(space), body, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.max_retries, job.timeout_seconds, job.priority) == (25, 86400, -7)
    assert job.backoff == {
        "type": "fixed",
        "delaySeconds": 5,
        "maxDelaySeconds": 60,
        "jitter": False,
    }
    assert job.callback_headers == {"Authorization": "Bearer t"}


def test_payload_over_one_mib_is_rejected(api, space):
    big = {"blob": "x" * (1024 * 1024)}
    response = api.post(url(space), {"name": "a", "payload": big}, format="json")
    assert response.status_code == 400
    assert "payload" in response.json()["details"]


def test_body_over_the_limit_is_413(api, space, settings):
    settings.API_MAX_BODY_BYTES = 1000
    response = api.post(url(space), {"name": "a", "payload": "x" * 2000}, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_malformed_json_is_400_and_wrong_content_type_415(api, space):
    response = api.post(url(space), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    response = api.post(url(space), "name=a", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    response = api.post(url(space), '"a string"', content_type="application/json")
    assert response.status_code == 400


def test_bulk_create_is_all_or_nothing_and_keeps_input_order(api, space):
    response = api.post(url(space), [{"name": "a"}, {"name": ""}, {"name": "c"}], format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["1"]
    assert Job.objects.count() == 0
    response = api.post(url(space), [{"name": f"n{i}"} for i in range(20)], format="json")
    assert response.status_code == 201
    ids = [item["id"] for item in response.json()]
    assert [Job.objects.get(pk=i).name for i in ids] == [f"n{i}" for i in range(20)]


def test_bulk_create_limits(api, space):
    assert api.post(url(space), [], format="json").status_code == 400
    response = api.post(url(space), [{"name": "a"}] * 1001, format="json")
    assert response.status_code == 400
    response = api.post(url(space), [{"name": "a"}] * 1000, format="json")
    assert response.status_code == 201
    assert Job.objects.count() == 1000


def test_idempotency_key_returns_the_existing_job_with_200(api, space):
    first = api.post(url(space), {"name": "a", "idempotencyKey": "order-1"}, format="json")
    again = api.post(url(space), {"name": "a", "idempotencyKey": "order-1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1


def test_idempotency_keys_in_a_bulk_create(api, space):
    api.post(url(space), {"name": "a", "idempotencyKey": "k1"}, format="json")
    response = api.post(
        url(space),
        [
            {"name": "a", "idempotencyKey": "k1"},
            {"name": "b", "idempotencyKey": "k2"},
            {"name": "c", "idempotencyKey": "k2"},
        ],
        format="json",
    )
    assert response.status_code == 201
    ids = [item["id"] for item in response.json()]
    assert ids[1] == ids[2] and ids[0] != ids[1]
    assert Job.objects.count() == 2


def test_the_same_idempotency_key_in_two_spaces_makes_two_jobs(cast, client_for):
    ids = {}
    for space in (cast.space, cast.other_space):
        response = client_for(issue_key(space)).post(
            url(space), {"name": "a", "idempotencyKey": "same"}, format="json"
        )
        assert response.status_code == 201
        ids[space.pk] = response.json()["id"]
    jobs = Job.objects.filter(idempotency_key="same")
    assert jobs.count() == 2
    # One job in each space, each the one its own create answered with.
    assert dict(jobs.values_list("space_id", "id")) == ids
    assert ids[cast.space.pk] != ids[cast.other_space.pk]


WORKER_CALLS = [
    ("post", "jobs/{id}/ack", scopes.ACK),
    ("post", "jobs/{id}/progress", scopes.PROGRESS),
    ("post", "jobs/{id}/checkpoint", scopes.EVENT),
    ("post", "jobs/{id}/event", scopes.EVENT),
    ("post", "jobs/{id}/logs", scopes.EVENT),
    ("post", "jobs/{id}/keepalive", scopes.KEEPALIVE),
    ("post", "jobs/{id}/complete", scopes.COMPLETE),
    ("post", "jobs/{id}/fail", scopes.FAIL),
    ("post", "jobs/{id}/kill", scopes.KILL),
    ("post", "jobs/{id}/retry", scopes.RETRY),
    ("post", "jobs/{id}/claim", scopes.POLL),
    ("get", "jobs/{id}", scopes.READ),
    ("get", "jobs/{id}/logs", scopes.READ),
    ("get", "jobs/{id}/progress", scopes.READ_PROGRESS),
    ("post", "spaces/{space}/jobs", scopes.CREATE),
    ("get", "spaces/{space}/jobs", scopes.READ),
    ("post", "spaces/{space}/jobs/poll", scopes.POLL),
    ("post", "jobs/complete", scopes.COMPLETE),
    ("post", "jobs/fail", scopes.FAIL),
]


@pytest.mark.parametrize(("method", "path", "scope"), WORKER_CALLS)
def test_each_missing_scope_is_403_with_the_exact_message(space, client_for, method, path, scope):
    job = Job.objects.create(space=space, name="a")
    granted = sorted(scopes.ALL - {scope, scopes.WORKER, scopes.WRITE})
    if scope == scopes.READ_PROGRESS:
        granted.remove(scopes.READ)
    client = client_for(issue_key(space, granted))
    response = getattr(client, method)(
        "/api/v1/" + path.format(id=job.id, space=space.public_id), {}, format="json"
    )
    assert response.status_code == 403
    assert response.json() == {"error": f"Missing required scope: {scope}", "code": "missing_scope"}
    # Refused before anything happened: no job created, this one untouched, no event.
    assert list(Job.objects.values_list("id", "status")) == [(job.id, "pending")]
    assert not JobEvent.objects.exists()


@pytest.mark.parametrize(
    ("shorthand", "scope", "granted"),
    [
        (scopes.WORKER, s, True)
        for s in (
            scopes.READ,
            scopes.POLL,
            scopes.ACK,
            scopes.PROGRESS,
            scopes.EVENT,
            scopes.COMPLETE,
            scopes.FAIL,
            scopes.KEEPALIVE,
        )
    ]
    + [(scopes.WORKER, s, False) for s in (scopes.CREATE, scopes.KILL, scopes.RETRY)]
    + [
        (scopes.WRITE, s, True)
        for s in (
            scopes.ACK,
            scopes.PROGRESS,
            scopes.EVENT,
            scopes.COMPLETE,
            scopes.FAIL,
            scopes.KEEPALIVE,
        )
    ]
    + [(scopes.WRITE, s, False) for s in (scopes.READ, scopes.POLL, scopes.CREATE)],
)
def test_shorthands(space, client_for, shorthand, scope, granted):
    job = Job.objects.create(space=space, name="a")
    client = client_for(issue_key(space, [shorthand]))
    method, path, _ = next(c for c in WORKER_CALLS if c[2] == scope)
    response = getattr(client, method)(
        "/api/v1/" + path.format(id=job.id, space=space.public_id), {}, format="json"
    )
    assert (response.status_code != 403) is granted


def test_progress_reads_with_the_public_progress_key(space, client_for):
    job = Job.objects.create(space=space, name="a", progress={"percent": 3, "message": "m"})
    client = client_for(space.public_progress_key)
    response = client.get(f"/api/v1/jobs/{job.id}/progress")
    assert response.status_code == 200
    assert response.json()["progress"]["percent"] == 3
    assert client.get(f"/api/v1/jobs/{job.id}").status_code == 403


def test_another_spaces_job_is_404_like_an_unknown_one(cast, client_for):
    theirs = Job.objects.create(space=cast.other_space, name="a")
    client = client_for(issue_key(cast.space))
    for method, path, _ in WORKER_CALLS:
        if "{id}" not in path or path.startswith("jobs/complete") or path.startswith("jobs/fail"):
            continue
        response = getattr(client, method)(
            "/api/v1/" + path.format(id=theirs.id), {}, format="json"
        )
        unknown = getattr(client, method)(
            "/api/v1/" + path.format(id="01ARZ3NDEKTSV4RRFFQ69G5FAV"), {}, format="json"
        )
        assert response.status_code == 404, path
        assert response.json() == unknown.json()
    for method in ("get", "post"):
        response = getattr(client, method)(url(cast.other_space), {"name": "x"}, format="json")
        assert response.status_code == 404
    assert client.post(f"{url(cast.other_space)}/poll", {}, format="json").status_code == 404
    assert Job.objects.get(pk=theirs.pk).status == "pending"
    # Nothing was written in either space: no job created, no transition, no log line.
    assert list(Job.objects.values_list("id", flat=True)) == [theirs.id]
    assert not JobEvent.objects.exists()
    assert Job.objects.get(pk=theirs.pk).log_seq == 0


def test_missing_unknown_and_revoked_keys_are_401(space):
    client = APIClient()
    assert client.get(url(space)).status_code == 401
    response = client.get(url(space), HTTP_X_API_KEY="emit_nope")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    from spaces.models import ApiKey

    clear = issue_key(space)
    key = ApiKey.objects.get(prefix=clear[:15])
    key.revoke()
    assert client.get(url(space), HTTP_X_API_KEY=clear).status_code == 401


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/v1/nothing/here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_newest_first_with_filters_and_paging(api, space, create, list_pages):
    ids = [create(name="a" if i % 2 else "b") for i in range(7)]
    response = api.get(url(space))
    assert [j["id"] for j in response.json()] == list(reversed(ids))
    assert "Link" not in response
    only_a = api.get(url(space), {"name": "a"}).json()
    assert {j["name"] for j in only_a} == {"a"} and len(only_a) == 3
    page = api.get(url(space), {"limit": 3, "offset": 2}).json()
    assert [j["id"] for j in page] == list(reversed(ids))[2:5]
    pages = list_pages({"limit": 3})
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [j["id"] for p in pages for j in p] == list(reversed(ids))
    Job.objects.filter(pk=ids[0]).update(status="dead")
    dead = api.get(url(space), {"status": "dead,killed"}).json()
    assert [j["id"] for j in dead] == [ids[0]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"offset": -1},
        {"offset": 10_001},
        {"status": "nope"},
        {"cursor": "bad"},
        {"q": "x", "offset": 1},
    ],
)
def test_list_rejects_bad_parameters(api, space, params):
    response = api.get(url(space), params)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        {"percent": 101, "message": "m"},
        {"percent": -1, "message": "m"},
        {"percent": 5, "message": ""},
        {"percent": 5},
        {"percent": "5", "message": "m"},
        {"percent": 5, "message": "m", "subProgress": {"a": {"percent": 200}}},
        {"percent": 5, "message": "m", "subProgress": {"a": 5}},
    ],
)
def test_progress_validation(api, create, poll, body):
    job_id = create()
    poll()
    api.post(f"/api/v1/jobs/{job_id}/ack")
    response = api.post(f"/api/v1/jobs/{job_id}/progress", body, format="json")
    assert response.status_code == 400
    job = Job.objects.get(pk=job_id)
    assert job.progress is None and not job.events.filter(type="progress").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"count": 0},
        {"count": 51},
        {"count": "2"},
        {"waitSeconds": 21},
        {"waitSeconds": -1},
        {"type": 5},
        [],
    ],
)
def test_poll_validation(api, space, body):
    response = api.post(f"{url(space)}/poll", body, format="json")
    assert response.status_code == 400


def test_fail_requires_an_error(api, create, poll):
    job_id = create()
    poll()
    before = Job.objects.get(pk=job_id)
    assert api.post(f"/api/v1/jobs/{job_id}/fail", {}, format="json").status_code == 400
    assert (
        api.post(
            f"/api/v1/jobs/{job_id}/keepalive", {"extendSeconds": 0}, format="json"
        ).status_code
        == 400
    )
    after = Job.objects.get(pk=job_id)
    assert (after.status, after.attempt_number, after.delivery_deadline) == (
        "delivered",
        1,
        before.delivery_deadline,
    )
    assert list(after.events.values_list("type", flat=True)) == ["created", "delivered"]


# --- logs -----------------------------------------------------------------------------------


def test_logs_as_ndjson_gzip_and_json_array(api, create):
    job_id = create()
    lines = [
        {"level": "info", "message": "starting", "step": 1},
        {"level": "warning", "message": "slow disk", "timestamp": "2030-01-01T00:00:00Z"},
    ]
    ndjson = "\n".join(json.dumps(line) for line in lines) + "\n"
    response = api.post(f"/api/v1/jobs/{job_id}/logs", ndjson, content_type="application/x-ndjson")
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    response = api.post(
        f"/api/v1/jobs/{job_id}/logs",
        gzip.compress(ndjson.encode()),
        content_type="application/x-ndjson",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.json() == {"accepted": 2}
    response = api.post(
        f"/api/v1/jobs/{job_id}/logs", [{"level": "error", "message": "boom"}], format="json"
    )
    assert response.json() == {"accepted": 1}
    logs = api.get(f"/api/v1/jobs/{job_id}/logs").json()["logs"]
    assert [line["seq"] for line in logs] == [1, 2, 3, 4, 5]
    assert logs[0]["attributes"] == {"step": 1}
    assert logs[1]["level"] == "warn" and logs[1]["timestamp"] == "2030-01-01T00:00:00Z"
    job = Job.objects.get(pk=job_id)
    assert job.events.filter(type="logs").count() == 3
    assert job.events.filter(type="logs").last().data == {"count": 1, "levels": {"error": 1}}


def test_reading_logs_by_cursor_level_and_text(api, create):
    job_id = create()
    lines = [
        {"level": "error" if i % 3 == 0 else "info", "message": f"line {i}"} for i in range(1, 11)
    ]
    api.post(f"/api/v1/jobs/{job_id}/logs", lines, format="json")
    logs_url = f"/api/v1/jobs/{job_id}/logs"
    page = api.get(logs_url, {"after": 4, "limit": 3}).json()
    assert [line["seq"] for line in page["logs"]] == [5, 6, 7] and page["hasMore"]
    page = api.get(logs_url, {"before": 5, "limit": 2}).json()
    assert [line["seq"] for line in page["logs"]] == [3, 4] and page["hasMore"]
    page = api.get(logs_url, {"level": "error"}).json()
    assert [line["seq"] for line in page["logs"]] == [3, 6, 9]
    page = api.get(logs_url, {"q": "LINE 1"}).json()
    assert [line["seq"] for line in page["logs"]] == [1, 10]
    assert api.get(logs_url, {"level": "loud"}).status_code == 400
    assert api.get(logs_url, {"limit": 0}).status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type", "extra"),
    [
        ('{"level": "info", "message": "a"}\nnot json\n', "application/x-ndjson", {}),
        (b"not gzip", "application/x-ndjson", {"HTTP_CONTENT_ENCODING": "gzip"}),
        ('[{"level": "loud", "message": "a"}]', "application/json", {}),
        ('[{"level": "info"}]', "application/json", {}),
        ('[{"level": "info", "message": "a", "timestamp": "yesterday"}]', "application/json", {}),
        ("[1]", "application/json", {}),
    ],
)
def test_bad_log_batches_are_rejected_whole(api, create, content, content_type, extra):
    job_id = create()
    response = api.post(f"/api/v1/jobs/{job_id}/logs", content, content_type=content_type, **extra)
    assert response.status_code == 400
    assert Job.objects.get(pk=job_id).log_seq == 0


def test_a_gzip_bomb_is_413(api, create, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    job_id = create()
    body = gzip.compress(b'{"level":"info","message":"' + b"a" * 100_000 + b'"}\n')
    response = api.post(
        f"/api/v1/jobs/{job_id}/logs",
        body,
        content_type="application/x-ndjson",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 413
    job = Job.objects.get(pk=job_id)
    assert job.log_seq == 0 and not job.events.filter(type="logs").exists()


# --- batch complete / fail --------------------------------------------------------------------


def test_batch_complete_and_fail_answer_per_item(api, create, poll, cast, client_for):
    a, b, c = create(), create(), create()
    claims = {j["id"]: j["claimId"] for j in poll(count=3)}
    response = api.post(
        "/api/v1/jobs/complete",
        [
            {"id": a, "claimId": claims[a], "result": {"ok": 1}},
            {"id": b, "claimId": "01STALESTALESTALESTALESTAL"},
            {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        ],
        format="json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0] == {"id": a, "ok": True, "status": "completed"}
    assert results[1]["code"] == "stale_claim" and not results[1]["ok"]
    assert results[2]["code"] == "not_found"
    response = api.post(
        "/api/v1/jobs/fail", [{"id": c, "error": "x", "retry": False}, {"id": b}], format="json"
    )
    results = response.json()["results"]
    assert results[0]["status"] == "dead"
    assert results[1]["code"] == "validation_error"
    assert Job.objects.get(pk=b).status == "delivered"
    done = Job.objects.get(pk=a)
    assert (done.status, done.result) == ("completed", {"ok": 1})
    dead = Job.objects.get(pk=c)
    assert (dead.status, dead.last_error) == ("dead", "x")
    assert list(Job.objects.get(pk=b).events.values_list("type", flat=True)) == [
        "created",
        "delivered",
    ]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "a\\u0000b"}',
        '{"name": "a", "payload": {"k": "\\u0000"}}',
        '{"name": "a", "idempotencyKey": "\\u0000"}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_nul_characters_and_absurd_nesting_are_400_not_500(api, space, body):
    response = api.post(url(space), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert not Job.objects.exists()


@pytest.mark.parametrize("params", [{"name": "a\x00"}, {"name": "x" * 201}, {"status": "\x00"}])
def test_bad_query_strings_are_400(api, space, params):
    assert api.get(url(space), params).status_code == 400


def test_malformed_job_ids_are_404(api):
    for job_id in ("short", "x" * 200, "01ARZ3NDEKTSV4RRFFQ69G5FA\x00"):
        assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404
        assert api.post(f"/api/v1/jobs/{job_id}/claim").status_code == 404


def test_the_schema_and_docs_page_are_public(client):
    response = client.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/spaces/{spaceId}/jobs",
        "/api/v1/spaces/{spaceId}/jobs/poll",
        "/api/v1/jobs/{jobId}",
        "/api/v1/jobs/{jobId}/claim",
        "/api/v1/jobs/{jobId}/ack",
        "/api/v1/jobs/{jobId}/progress",
        "/api/v1/jobs/{jobId}/checkpoint",
        "/api/v1/jobs/{jobId}/event",
        "/api/v1/jobs/{jobId}/keepalive",
        "/api/v1/jobs/{jobId}/logs",
        "/api/v1/jobs/{jobId}/complete",
        "/api/v1/jobs/{jobId}/fail",
        "/api/v1/jobs/{jobId}/kill",
        "/api/v1/jobs/{jobId}/retry",
    ]:
        assert path in paths, path
    create = paths["/api/v1/spaces/{spaceId}/jobs"]["post"]
    assert {"201", "200", "400", "401", "403", "413", "415", "429"} <= set(create["responses"])
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/v1/schema" in html
    # tests/jobs/test_openapi.py checks the page's assets are the service's own.
    assert "http://" not in html and "https://" not in html


def test_callbacks_to_literal_internal_addresses_are_refused(api, space, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False
    for target in (
        "http://127.0.0.1/hook",
        "http://169.254.169.254/",
        "http://[::1]/x",
        "http://localhost/x",
    ):
        response = api.post(url(space), {"name": "a", "callbackUrl": target}, format="json")
        assert response.status_code == 400, target
        assert "callbackUrl" in response.json()["details"]
    assert not Job.objects.exists()
    response = api.post(
        url(space), {"name": "a", "callbackUrl": "https://example.com/hook"}, format="json"
    )
    assert response.status_code == 201
    (job,) = Job.objects.all()
    assert job.callback_url == "https://example.com/hook"


def test_callback_headers_follow_the_shared_header_rules(api, space):
    for headers in ({"Bad Name": "x"}, {"X-A": "line\nbreak"}, {"Content-Length": "5"}):
        response = api.post(url(space), {"name": "a", "callbackHeaders": headers}, format="json")
        assert response.status_code == 400, headers
    assert not Job.objects.exists()


def test_claim_and_retry_refuse_over_size_bodies(api, space, settings, create):
    job_id = create()
    settings.API_MAX_BODY_BYTES = 100
    for verb in ("claim", "retry"):
        response = api.post(f"/api/v1/jobs/{job_id}/{verb}", {"x": "y" * 200}, format="json")
        assert response.status_code == 413, verb
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.claim_id) == ("pending", None)
    assert list(job.events.values_list("type", flat=True)) == ["created"]
