"""The worker reports a failure as {type, message, traceback}, and says when a job is lost."""

from __future__ import annotations

import json
import logging

import pytest

from jobyard import PermanentFailure, Worker, errors
from jobyard.worker import JobHandle

DESCRIPTOR = {
    "id": "j1",
    "name": "resize",
    "payload": {"size": 0},
    "status": "running",  # acked by the poll
    "attemptNumber": 0,
    "maxRetries": 3,
    "timeoutSeconds": 60,
    "claimId": "c1",
}


def _run(client, function, descriptor=DESCRIPTOR) -> Worker:
    worker = Worker(function, client=client, keepalive=False)
    try:
        worker.process(descriptor)
    finally:
        worker.close()
    return worker


def _requests(httpserver, path):
    return [request for request, _ in httpserver.log if request.path == path]


def _log_lines(httpserver):
    lines = []
    for request in _requests(httpserver, "/api/v1/jobs/j1/logs"):
        lines += [json.loads(line) for line in request.get_data().splitlines() if line.strip()]
    return lines


def _expect_logs(httpserver):
    httpserver.expect_request("/api/v1/jobs/j1/logs", method="POST").respond_with_json(
        {"accepted": 1}, status=202
    )


def test_an_exception_fails_the_job_with_type_message_and_traceback(httpserver, client):
    httpserver.expect_request("/api/v1/jobs/j1/fail", method="POST").respond_with_json(
        {"id": "j1", "status": "scheduled", "attemptNumber": 1}
    )
    _expect_logs(httpserver)

    def resize(job):
        raise ValueError(f"bad size: {job.payload['size']}")

    worker = _run(client, resize)

    (fail,) = _requests(httpserver, "/api/v1/jobs/j1/fail")
    body = fail.get_json()
    assert body["retry"] is True
    assert body["error"]["type"] == "ValueError"
    assert body["error"]["message"] == "bad size: 0"
    assert "in resize" in body["error"]["traceback"]
    assert fail.headers["X-Claim-Id"] == "c1"
    (line,) = _log_lines(httpserver)
    assert line["level"] == "error" and line["exception"] == "ValueError"
    assert worker.stats["failed"] == 1


def test_a_permanent_failure_goes_dead_with_one_worker_line_and_one_job_line(
    httpserver, client, caplog
):
    httpserver.expect_request("/api/v1/jobs/j1/fail", method="POST").respond_with_json(
        {"id": "j1", "status": "dead", "attemptNumber": 0}
    )
    _expect_logs(httpserver)

    def resize(job):
        raise PermanentFailure("unsupported format")

    with caplog.at_level(logging.INFO, logger="jobyard"):
        _run(client, resize)

    (fail,) = _requests(httpserver, "/api/v1/jobs/j1/fail")
    assert fail.get_json()["retry"] is False
    assert fail.get_json()["error"]["type"] == "jobyard.errors.PermanentFailure"
    dead = [r for r in caplog.records if "is dead" in r.getMessage()]
    assert len(dead) == 1
    assert dead[0].levelno == logging.ERROR
    assert "j1 (resize)" in dead[0].getMessage() and "unsupported format" in dead[0].getMessage()
    fatal = [line for line in _log_lines(httpserver) if line["level"] == "fatal"]
    assert len(fatal) == 1 and "permanent failure" in fatal[0]["message"]
    # The claim ended with the fail: the last line goes without it.
    last = _requests(httpserver, "/api/v1/jobs/j1/logs")[-1]
    assert "X-Claim-Id" not in last.headers


def test_a_failure_with_no_retries_left_is_logged_as_dead(httpserver, client, caplog):
    httpserver.expect_request("/api/v1/jobs/j1/fail", method="POST").respond_with_json(
        {"id": "j1", "status": "dead", "attemptNumber": 3}
    )
    _expect_logs(httpserver)

    def resize(job):
        raise RuntimeError("still broken")

    with caplog.at_level(logging.ERROR, logger="jobyard"):
        _run(client, resize, {**DESCRIPTOR, "attemptNumber": 3})

    (dead,) = [r for r in caplog.records if "is dead" in r.getMessage()]
    assert "attempt 3 (no retries left): RuntimeError: still broken" in dead.getMessage()


def test_a_killed_job_gets_one_worker_line_and_no_fail(httpserver, client, caplog):
    httpserver.expect_request("/api/v1/jobs/j1/progress", method="POST").respond_with_json(
        {"error": "The job was killed", "code": "job_killed"}, status=409
    )

    def resize(job):
        job.progress(10, "starting")
        raise AssertionError("not reached: the progress call raises")

    with caplog.at_level(logging.INFO, logger="jobyard"):
        worker = _run(client, resize)

    assert _requests(httpserver, "/api/v1/jobs/j1/fail") == []
    killed = [r for r in caplog.records if "was killed" in r.getMessage()]
    assert len(killed) == 1 and killed[0].levelno == logging.WARNING
    assert worker.stats["dropped"] == 1


def test_a_server_refusing_an_error_object_gets_the_message(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/jobs/j1/logs", method="POST").respond_with_json(
        {"accepted": 1}, status=202
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1/fail", method="POST").respond_with_json(
        {"error": "Validation failed", "code": "validation_error"}, status=400
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1/fail", method="POST").respond_with_json(
        {"id": "j1", "status": "pending", "attemptNumber": 1}
    )

    def resize(job):
        raise KeyError("size")

    _run(client, resize)

    first, second = (r.get_json() for r in _requests(httpserver, "/api/v1/jobs/j1/fail"))
    assert isinstance(first["error"], dict)
    assert second["error"] == "KeyError: 'size'"


@pytest.mark.parametrize(
    ("descriptor", "expected"), [({}, 0), ({"attemptNumber": 0}, 0), ({"attemptNumber": 2}, 2)]
)
def test_the_attempt_number_is_the_servers_counting_from_zero(client, descriptor, expected):
    worker = Worker(lambda job: None, client=client)

    assert JobHandle(worker, {"id": "j1", **descriptor}).attempt_number == expected


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("trace", "trace"),
        ("fatal", "fatal"),
        ("critical", "fatal"),
        ("warning", "warn"),
        ("info", "info"),
    ],
)
def test_log_levels_are_sent_as_the_server_keeps_them(client, given, sent):
    handle = JobHandle(Worker(lambda job: None, client=client), DESCRIPTOR)

    handle.log(given, "hello")

    assert handle._log_buffer[-1]["level"] == sent


def test_an_unknown_log_level_is_refused(client):
    handle = JobHandle(Worker(lambda job: None, client=client), DESCRIPTOR)

    with pytest.raises(ValueError, match="log level"):
        handle.log("loud", "hello")


def test_a_complete_whose_answer_was_lost_counts_as_completed(httpserver, client):
    # The first complete went through but its answer was lost (a 502 from a proxy); the
    # runner's retry then gets 409 invalid_transition, and the job itself says completed.
    httpserver.expect_ordered_request("/api/v1/jobs/j1/complete", method="POST").respond_with_data(
        "", status=502
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1/complete", method="POST").respond_with_json(
        {"error": "Cannot complete a job that is completed", "code": "invalid_transition"},
        status=409,
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {"id": "j1", "status": "completed"}
    )
    worker = Worker(lambda job: {"ok": True}, client=client, keepalive=False)
    worker._with_retries = _retry_once(worker)  # no backoff sleeps

    try:
        worker.process(DESCRIPTOR)
    finally:
        worker.close()

    assert worker.stats["completed"] == 1 and worker.stats["dropped"] == 0


def test_a_complete_refused_for_a_dead_job_is_dropped(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/jobs/j1/complete", method="POST").respond_with_json(
        {"error": "Cannot complete a job that is dead", "code": "invalid_transition"}, status=409
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {"id": "j1", "status": "dead"}
    )

    worker = _run(client, lambda job: {"ok": True})

    assert worker.stats["completed"] == 0 and worker.stats["dropped"] == 1


def _retry_once(worker):
    def call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.TRANSIENT:
            return fn(*args, **kwargs)

    return call
