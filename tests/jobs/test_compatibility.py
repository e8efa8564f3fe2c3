"""The emit.run job API, to the letter: each behaviour its documentation states and a client can
depend on, pinned by name (docs/api.md, "Compatibility"). The deliberate differences are pinned
here too, so none changes by accident.

The stream rules are pinned beside the stream tests, which need their WebSocket fixtures:
every message has `data` and replayed or gap-filled events carry `counts`
(tests/jobs/test_stream_envelope.py); events committed by another process reach the streams on
the embedded default within a second (tests/jobs/test_stream_relay.py).
"""

from __future__ import annotations

import json

import pytest

from jobs.models import Job, JobEvent
from tests.notifications.conftest import Engine

NO_BACKOFF = {"type": "fixed", "delaySeconds": 0, "jitter": False}


@pytest.fixture
def engine(django_capture_on_commit_callbacks) -> Engine:
    return Engine(django_capture_on_commit_callbacks)


# --- poll filters ----------------------------------------------------------------------------


def test_poll_filter_precedence_is_types_then_type_then_names_then_name(create, poll):
    ids = {name: create(name=name) for name in ("a", "b", "c", "d")}

    assert [j["id"] for j in poll(types=["a"], type="b", names=["c"], name="d")] == [ids["a"]]
    assert [j["id"] for j in poll(type="b", names=["c"], name="d")] == [ids["b"]]
    assert [j["id"] for j in poll(names=["c"], name="d")] == [ids["c"]]
    assert [j["id"] for j in poll(name="d")] == [ids["d"]]


# --- the job list ----------------------------------------------------------------------------


def test_the_job_list_is_a_bare_array_with_the_next_page_in_a_link_header(
    api, space, create, list_pages
):
    ids = [create(name=f"n{i}") for i in range(5)]

    first = api.get(f"/api/v1/spaces/{space.public_id}/jobs", {"limit": 2})
    pages = list_pages({"limit": 2})

    assert isinstance(first.json(), list) and 'rel="next"' in first["Link"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [job["id"] for page in pages for job in page] == list(reversed(ids))


# --- attemptNumber counts from 0 ---------------------------------------------------------------


def test_attempt_number_is_0_on_the_first_attempt_everywhere(api, create, poll):
    job_id = create(maxRetries=3, backoff=NO_BACKOFF)

    (descriptor,) = poll()
    assert descriptor["attemptNumber"] == 0
    ack = api.post(f"/api/v1/jobs/{job_id}/ack", {}, format="json").json()
    assert ack["attemptNumber"] == 0
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    assert job["attemptNumber"] == 0
    assert {event["attemptNumber"] for event in job["events"]} == {0}


def test_a_job_that_died_with_max_retries_3_shows_attempt_number_3(api, create, poll):
    job_id = create(maxRetries=3, backoff=NO_BACKOFF)
    seen = []
    for _ in range(4):
        (descriptor,) = poll()
        seen.append(descriptor["attemptNumber"])
        response = api.post(f"/api/v1/jobs/{job_id}/fail", {"error": "boom"}, format="json")
        assert response.status_code == 200

    job = api.get(f"/api/v1/jobs/{job_id}").json()
    assert seen == [0, 1, 2, 3]
    assert (job["status"], job["attemptNumber"]) == ("dead", 3)
    retried = [e["data"]["attemptNumber"] for e in job["events"] if e["type"] == "retried"]
    assert retried == [1, 2, 3]  # each names the attempt it schedules
    # The database and the dashboard count from 1 ("4/4").
    assert Job.objects.get(pk=job_id).attempt_number == 4


def test_log_lines_carry_the_attempt_number_from_0(api, create, poll):
    job_id = create()
    poll()
    api.post(f"/api/v1/jobs/{job_id}/logs", [{"message": "hi"}], format="json")

    (line,) = api.get(f"/api/v1/jobs/{job_id}/logs").json()["logs"]
    assert line["attemptNumber"] == 0


# --- logs ------------------------------------------------------------------------------------


def test_log_levels_trace_and_fatal_are_kept_as_sent_and_filterable(api, create):
    job_id = create()
    lines = [{"level": level, "message": level} for level in ("trace", "debug", "fatal", "error")]
    assert api.post(f"/api/v1/jobs/{job_id}/logs", lines, format="json").status_code == 202

    logs = api.get(f"/api/v1/jobs/{job_id}/logs").json()["logs"]
    assert [line["level"] for line in logs] == ["trace", "debug", "fatal", "error"]
    only = api.get(f"/api/v1/jobs/{job_id}/logs", {"level": "trace,fatal"}).json()["logs"]
    assert [line["message"] for line in only] == ["trace", "fatal"]


def test_an_unknown_log_level_is_refused_naming_every_level(api, create):
    job_id = create()
    response = api.post(
        f"/api/v1/jobs/{job_id}/logs", [{"level": "loud", "message": "x"}], format="json"
    )
    assert response.status_code == 400
    assert response.json()["details"]["0"] == [
        "level must be one of trace, debug, info, warn, error, fatal"
    ]


@pytest.mark.parametrize(
    "media_type", ["application/ndjson", "application/x-ndjson", "application/jsonl"]
)
def test_logs_accept_ndjson_under_each_media_type(api, create, media_type):
    job_id = create()
    body = '{"level": "info", "message": "one"}\n{"level": "fatal", "message": "two"}\n'

    response = api.post(f"/api/v1/jobs/{job_id}/logs", body, content_type=media_type)

    assert (response.status_code, response.json()) == (202, {"accepted": 2})


# --- callbackHeaders -------------------------------------------------------------------------


def test_callback_headers_absent_is_null(api, create):
    without = api.get(f"/api/v1/jobs/{create()}").json()
    with_headers = api.get(f"/api/v1/jobs/{create(callbackHeaders={'X-Token': 'abc'})}").json()

    assert without["callbackHeaders"] is None
    assert with_headers["callbackHeaders"] == {"X-Token": "abc"}


# --- callback_sent / callback_failed ---------------------------------------------------------


def test_callback_events_carry_url_status_code_retry_attempt_will_retry_and_response_body(
    space, engine, httpserver
):
    long_answer = "x" * 5000
    httpserver.expect_oneshot_request("/cb").respond_with_data("busy", status=503)
    httpserver.expect_oneshot_request("/cb").respond_with_data(long_answer, status=200)
    url = httpserver.url_for("/cb") + "?token=s3cret&plain"
    job = engine.create(space, callback_url=url)

    engine.complete(engine.start(engine.deliver(job)), {"ok": True})

    failed, sent = JobEvent.objects.filter(job=job, type__startswith="callback_").order_by("id")
    redacted = httpserver.url_for("/cb") + "?token=redacted&plain"
    assert (failed.type, failed.data) == (
        "callback_failed",
        {
            "url": redacted,
            "statusCode": 503,
            "retryAttempt": 0,
            "willRetry": True,
            "responseBody": "busy",
            "error": "HTTP 503: busy",
        },
    )
    assert sent.type == "callback_sent"
    assert {k: v for k, v in sent.data.items() if k != "responseBody"} == {
        "url": redacted,
        "statusCode": 200,
        "retryAttempt": 1,
        "willRetry": False,
    }
    assert sent.data["responseBody"] == "x" * 1024  # the first 1 KiB
    assert "s3cret" not in json.dumps([failed.data, sent.data])


def test_the_callback_body_counts_attempts_from_0(space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("")
    job = engine.create(space, callback_url=httpserver.url_for("/cb"), max_retries=1)
    job = engine.fail(engine.start(engine.deliver(job)), "first")
    engine.complete(engine.start(engine.deliver(job)), 7)

    (request,) = [req for req, _ in httpserver.log if req.path == "/cb"]
    body = json.loads(request.data)
    assert (body["status"], body["attemptNumber"], body["result"]) == ("completed", 1, 7)


# --- deliberate differences (docs/api.md) ----------------------------------------------------


def test_difference_another_spaces_job_answers_404_not_403(api, cast, client_for, other_key):
    job_id = client_for(other_key).post(
        f"/api/v1/spaces/{cast.other_space.public_id}/jobs", {"name": "x"}, format="json"
    )
    assert job_id.status_code == 201

    response = api.get(f"/api/v1/jobs/{job_id.json()['id']}")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_difference_any_2xx_is_a_callback_success(space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("", status=202)
    job = engine.create(space, callback_url=httpserver.url_for("/cb"))

    engine.kill(job)

    (event,) = JobEvent.objects.filter(job=job, type__startswith="callback_")
    assert (event.type, event.data["statusCode"]) == ("callback_sent", 202)


def test_difference_a_failed_attempt_waits_out_its_backoff_as_scheduled(api, create, poll):
    job_id = create(maxRetries=1, backoff={"type": "fixed", "delaySeconds": 30, "jitter": False})
    poll()

    api.post(f"/api/v1/jobs/{job_id}/fail", {"error": "boom"}, format="json")

    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "scheduled"
    assert poll() == []  # not pending until the backoff is over


def test_difference_notifications_send_our_own_user_agent(space, engine, httpserver):
    httpserver.expect_request("/cb").respond_with_data("")
    job = engine.create(space, callback_url=httpserver.url_for("/cb"))

    engine.kill(job)

    (request,) = [req for req, _ in httpserver.log if req.path == "/cb"]
    assert request.headers["User-Agent"].startswith("Jobyard")
