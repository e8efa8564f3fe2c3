"""The runner against a fake server: backoff, rate limits, poll fallback, claim ids (no sleeps)."""

from __future__ import annotations

import pytest

from jobyard import Client, Worker, errors
from jobyard.worker import backoff_delay


class RecordingStop:
    """Stands in for the worker's stop event: records each wait and stops after `limit`."""

    def __init__(self, worker: Worker, limit: int) -> None:
        self.worker = worker
        self.real = worker._stopping
        self.limit = limit
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if len(self.waits) >= self.limit:
            self.real.set()
        return self.real.is_set()

    def is_set(self) -> bool:
        return self.real.is_set()

    def set(self) -> None:
        self.real.set()


def _run_poll_loop(worker: Worker, limit: int) -> list[float]:
    recorder = RecordingStop(worker, limit)
    worker._stopping = recorder  # type: ignore[assignment]
    worker._poll_loop()
    return recorder.waits


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    for failures in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        delays = [backoff_delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({backoff_delay(5) for _ in range(20)}) > 1  # jittered


def test_an_unreachable_server_is_polled_with_growing_pauses():
    # retries=0: the pauses measured are the poll loop's own, not the transport's
    client = Client("http://127.0.0.1:9", "emit_x", "space", timeout=1, retries=0)
    worker = Worker(lambda job: None, client=client)

    waits = _run_poll_loop(worker, limit=6)

    assert len(waits) == 6
    for n, wait in enumerate(waits, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_a_rate_limit_waits_for_retry_after(httpserver):
    httpserver.expect_request("/api/v1/spaces/s/jobs/poll").respond_with_json(
        {"error": "Rate limited", "code": "rate_limited"}, status=429, headers={"Retry-After": "7"}
    )
    worker = Worker(lambda job: None, client=Client(httpserver.url_for("/"), "emit_x", "s"))

    waits = _run_poll_loop(worker, limit=2)

    assert waits == [7.0, 7.0]


def test_a_revoked_key_stops_the_worker_with_the_error(httpserver):
    httpserver.expect_request("/api/v1/spaces/s/jobs/poll").respond_with_json(
        {"error": "Invalid or missing API key", "code": "invalid_api_key"}, status=401
    )
    worker = Worker(lambda job: None, client=Client(httpserver.url_for("/"), "emit_x", "s"))

    with pytest.raises(errors.AuthError):
        worker.run(install_signal_handlers=False)


def test_a_server_refusing_the_beyond_spec_poll_fields_gets_a_plain_poll(httpserver):
    bodies = []

    def handler(request):
        from werkzeug import Response

        body = request.get_json()
        bodies.append(body)
        if "waitSeconds" in body or "ack" in body:
            return Response(
                '{"error": "Validation failed", "code": "validation_error"}',
                status=400,
                content_type="application/json",
            )
        return Response('{"jobs": []}', content_type="application/json")

    httpserver.expect_request("/api/v1/spaces/s/jobs/poll").respond_with_handler(handler)
    worker = Worker(lambda job: None, client=Client(httpserver.url_for("/"), "emit_x", "s"))

    waits = _run_poll_loop(worker, limit=1)

    assert bodies == [{"count": 1, "waitSeconds": 10, "ack": True}, {"count": 1}]
    assert len(waits) == 1  # the idle pause after an empty, immediate answer


def test_every_call_for_a_claimed_job_carries_its_claim_id(httpserver):
    from werkzeug import Response

    calls: list[tuple[str, str | None]] = []

    def handler(request):
        calls.append((request.path.rsplit("/", 1)[-1], request.headers.get("X-Claim-Id")))
        return Response('{"ok": true}', content_type="application/json")

    for verb in ("ack", "progress", "checkpoint", "event", "keepalive", "logs", "complete"):
        httpserver.expect_request(f"/api/v1/jobs/j1/{verb}", method="POST").respond_with_handler(
            handler
        )

    def handle(job):
        job.progress(10, "start")
        job.checkpoint({"at": 1})
        job.event("custom", {"a": 1})
        job.keepalive()
        job.log("info", "hello")
        return {"done": True}

    worker = Worker(handle, client=Client(httpserver.url_for("/"), "emit_x", "s"))
    descriptor = {
        "id": "j1",
        "name": "n",
        "payload": {},
        "claimId": "claim-7",
        "status": "delivered",
    }
    try:
        worker.process(descriptor)
    finally:
        worker.close()

    verbs = [verb for verb, _ in calls]
    assert verbs[0] == "ack" and verbs[-1] == "complete"
    assert {"progress", "checkpoint", "event", "keepalive", "logs"} <= set(verbs)
    assert {claim for _, claim in calls} == {"claim-7"}
    assert worker.stats["completed"] == 1


def test_the_log_handler_ships_standard_logging_records_of_the_running_job(httpserver):
    import json
    import logging

    from werkzeug import Response

    from jobyard import JobLogHandler

    sent: list[dict] = []

    def logs(request):
        sent.extend(json.loads(line) for line in request.get_data().splitlines())
        return Response('{"accepted": 1}', status=202, content_type="application/json")

    httpserver.expect_request("/api/v1/jobs/j1/logs").respond_with_handler(logs)
    httpserver.expect_request("/api/v1/jobs/j1/complete").respond_with_json({"ok": True})
    app_log = logging.getLogger("myapp.tasks")
    app_log.setLevel(logging.DEBUG)
    handler = JobLogHandler()
    app_log.addHandler(handler)

    def handle(job):
        app_log.warning("disk at %d%%", 91)
        app_log.debug("details")

    worker = Worker(handle, client=Client(httpserver.url_for("/"), "emit_x", "s"))
    try:
        app_log.info("outside any job: not shipped")
        worker.process({"id": "j1", "claimId": "c", "status": "running"})
    finally:
        worker.close()
        app_log.removeHandler(handler)

    assert [(line["level"], line["message"], line["logger"]) for line in sent] == [
        ("warn", "disk at 91%", "myapp.tasks"),
        ("debug", "details", "myapp.tasks"),
    ]
