"""The command line: what an operator does from a terminal, against a scripted server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jobyard.__main__ as cli
from jobyard.__main__ import main

JOB = {"id": "j1", "name": "email.send", "status": "running", "attemptNumber": 0}


@pytest.fixture
def env(httpserver, monkeypatch, waits):
    for name in ("JOBYARD_URL", "JOBYARD_TOKEN", "JOBYARD_SPACE", "JOBYARD_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBYARD_URL", httpserver.url_for("/"))
    monkeypatch.setenv("JOBYARD_TOKEN", "emit_test")
    monkeypatch.setenv("JOBYARD_SPACE", "space1")
    polls: list[float] = []
    monkeypatch.setattr(cli, "_sleep", polls.append)
    return polls


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# --- help and settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["jobs"],
        ["jobs", "list"],
        ["jobs", "get"],
        ["jobs", "logs"],
        ["jobs", "retry"],
        ["jobs", "kill"],
        ["schedules", "list"],
        ["schedules", "create"],
        ["schedules", "pause"],
        ["schedules", "resume"],
        ["limits", "get"],
        ["limits", "set"],
        ["enqueue"],
        ["worker"],
        ["push"],
    ],
)
def test_every_command_has_help(capsys, argv):
    code, out, _ = _run(capsys, *argv, "--help")

    assert code == 0
    assert out.startswith("usage: jobyard")


def test_enqueue_help_tells_about_wait(capsys):
    _, out, _ = _run(capsys, "enqueue", "--help")

    assert "--wait" in out and "progress" in out and "--url" in out and "JOBYARD_URL" in out


@pytest.mark.parametrize(
    ("argv", "unset", "named"),
    [
        (["jobs", "get", "j1"], "JOBYARD_URL", ("--url", "JOBYARD_URL")),
        (["jobs", "get", "j1"], "JOBYARD_TOKEN", ("--token", "JOBYARD_TOKEN")),
        (["jobs", "list"], "JOBYARD_SPACE", ("--space", "JOBYARD_SPACE")),
        (["limits", "get"], "JOBYARD_SPACE", ("--space", "JOBYARD_SPACE")),
    ],
)
def test_a_missing_setting_names_its_flag_and_variable(
    capsys, monkeypatch, env, argv, unset, named
):
    monkeypatch.delenv(unset)

    code, _, err = _run(capsys, *argv)

    assert code == 2
    assert all(word in err for word in named), err


def test_a_job_id_command_needs_no_space(httpserver, capsys, monkeypatch, env):
    monkeypatch.delenv("JOBYARD_SPACE")
    httpserver.expect_request("/api/v1/jobs/j1").respond_with_json(JOB)

    code, out, _ = _run(capsys, "jobs", "get", "j1")

    assert code == 0 and json.loads(out)["id"] == "j1"


def test_flags_win_over_the_environment(httpserver, capsys, env):
    httpserver.expect_request(
        "/api/v1/jobs/j1", headers={"Authorization": "Bearer emit_flag"}
    ).respond_with_json(JOB)

    code, _, _ = _run(capsys, "jobs", "get", "j1", "--token", "emit_flag")

    assert code == 0


def test_a_refused_call_exits_1_with_the_servers_error(httpserver, capsys, env):
    httpserver.expect_request("/api/v1/jobs/j1/retry", method="POST").respond_with_json(
        {"error": "Cannot retry a job that is running", "code": "invalid_transition"}, status=409
    )

    code, _, err = _run(capsys, "jobs", "retry", "j1")

    assert code == 1
    assert json.loads(err) == {
        "error": "Cannot retry a job that is running",
        "code": "invalid_transition",
        "status": 409,
    }


# --- jobs ---------------------------------------------------------------------------------


def test_jobs_list_shows_a_table_with_the_error_headline(httpserver, capsys, env):
    error = json.dumps({"type": "ValueError", "message": "bad size", "traceback": "T"})
    httpserver.expect_request(
        "/api/v1/spaces/space1/jobs", query_string="status=dead%2Ckilled&name=resize&limit=50"
    ).respond_with_json([{**JOB, "status": "dead", "name": "resize", "error": error}])

    code, out, _ = _run(
        capsys, "jobs", "list", "--status", "dead", "--status", "killed", "--name", "resize"
    )

    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "STATUS", "NAME", "ATTEMPT", "CREATED", "ERROR"]
    assert row.startswith("j1") and "dead" in row and row.endswith("ValueError: bad size")


def test_jobs_list_all_follows_the_pages_as_json_lines(httpserver, capsys, env):
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        [JOB], headers={"Link": '</api/v1/spaces/space1/jobs?cursor=c2>; rel="next"'}
    )
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="cursor=c2"
    ).respond_with_json([{**JOB, "id": "j2"}])

    code, out, _ = _run(capsys, "jobs", "list", "--all", "--json")

    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["j1", "j2"]


def test_jobs_kill_sends_the_reason(httpserver, capsys, env):
    httpserver.expect_request(
        "/api/v1/jobs/j1/kill", method="POST", json={"reason": "bad input"}
    ).respond_with_json({"id": "j1", "status": "killed", "attemptNumber": 0})

    code, out, _ = _run(capsys, "jobs", "kill", "j1", "--reason", "bad input")

    assert code == 0 and json.loads(out)["status"] == "killed"


def _line(seq: int, message: str, level: str = "info") -> dict:
    return {"seq": seq, "level": level, "message": message, "timestamp": "T", "attributes": {}}


def test_jobs_logs_prints_the_lines(httpserver, capsys, env):
    httpserver.expect_request("/api/v1/jobs/j1/logs").respond_with_json(
        {
            "logs": [
                _line(1, "start"),
                {**_line(2, "oops", "error"), "attributes": {"traceback": "Traceback..."}},
            ],
            "hasMore": False,
        }
    )

    code, out, _ = _run(capsys, "jobs", "logs", "j1")

    assert code == 0
    assert out.splitlines() == ["T INFO  start", "T ERROR oops", "Traceback..."]


def test_jobs_logs_follow_prints_new_lines_as_the_stream_signals_them(
    httpserver, capsys, monkeypatch, env, job_stream
):
    stream = job_stream(
        {"type": "init", "jobId": "j1", "status": "running", "progress": None},
        {"type": "logs", "status": "running", "data": {"count": 1}},
        {"type": "completed", "status": "completed", "data": {"result": None}},
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1/logs").respond_with_json(
        {"logs": [_line(1, "one")], "hasMore": False}
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(JOB)
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(JOB)  # after init
    httpserver.expect_ordered_request(
        "/api/v1/jobs/j1/logs", query_string="after=1&limit=500"
    ).respond_with_json({"logs": [_line(2, "two")], "hasMore": False})
    httpserver.expect_ordered_request(
        "/api/v1/jobs/j1/logs", query_string="after=2&limit=500"
    ).respond_with_json({"logs": [_line(3, "three")], "hasMore": False})
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "status": "completed"}
    )
    # the fake stream's address in place of the server's realtime URL
    monkeypatch.setattr(
        cli.Client, "realtime_url", lambda self, job_id: stream.url + "?token=emit_test"
    )

    code, out, _ = _run(capsys, "jobs", "logs", "j1", "--follow")

    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()] == ["one", "two", "three"]
    assert stream.paths == ["/api/v1/realtime/j1?token=emit_test"]


# --- enqueue --wait -----------------------------------------------------------------------


def _created(httpserver, realtime_url: str) -> None:
    # Ordered, as the reads that follow it (pytest-httpserver serves those in order only).
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", method="POST"
    ).respond_with_json(
        {"id": "j1", "spaceId": "space1", "status": "pending", "realtimeUrl": realtime_url},
        status=201,
    )


def test_enqueue_wait_shows_progress_and_exits_0_when_the_job_completes(
    httpserver, capsys, env, job_stream
):
    stream = job_stream(
        {"type": "init", "jobId": "j1", "status": "pending", "progress": None},
        {"type": "started", "status": "running", "data": None},
        {"type": "progress", "status": "running", "data": {"percent": 50, "message": "halfway"}},
        {"type": "progress", "status": "running", "data": {"percent": 100, "message": "done"}},
        {"type": "completed", "status": "completed", "data": {"result": {"ok": True}}},
    )
    _created(httpserver, stream.url)
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "status": "pending"}
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "status": "completed", "result": {"ok": True}}
    )

    code, out, err = _run(
        capsys, "enqueue", "--name", "email.send", "--payload", '{"to": "a"}', "--wait"
    )

    assert code == 0
    assert json.loads(out)["result"] == {"ok": True}
    assert err.splitlines() == [
        "[###############---------------]  50% halfway",
        "[##############################] 100% done",
    ]
    assert stream.paths == ["/api/v1/realtime/j1?token=emit_test"]


def test_enqueue_wait_exits_1_when_the_job_goes_dead(httpserver, capsys, env, job_stream):
    error = json.dumps({"type": "ValueError", "message": "bad size", "traceback": "T"})
    stream = job_stream(
        {
            "type": "init",
            "jobId": "j1",
            "status": "running",
            "progress": {"percent": 10, "message": "go"},
        },
        {"type": "dead", "status": "dead", "data": {"error": error}},
    )
    _created(httpserver, stream.url)
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(JOB)
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "status": "dead", "error": error}
    )

    code, out, err = _run(capsys, "enqueue", "--name", "resize", "--wait")

    assert code == 1
    assert json.loads(out)["status"] == "dead"
    assert "[###-" in err
    assert err.splitlines()[-1] == "job j1 dead: ValueError: bad size"


def test_enqueue_wait_polls_when_the_stream_is_unavailable(httpserver, capsys, env):
    _created(httpserver, "ws://127.0.0.1:9/api/v1/realtime/j1")
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "progress": {"percent": 20, "message": "working"}}
    )
    httpserver.expect_ordered_request("/api/v1/jobs/j1").respond_with_json(
        {**JOB, "status": "killed"}
    )

    code, _, err = _run(capsys, "enqueue", "--name", "resize", "--wait")

    assert code == 1
    assert "20% working" in err and err.splitlines()[-1] == "job j1 killed"
    assert env == [cli.POLL_INTERVAL]  # one pause between the two reads


def test_enqueue_without_wait_prints_the_created_job(httpserver, capsys, env):
    _created(httpserver, "ws://x")

    code, out, _ = _run(capsys, "enqueue", "--name", "a", "--idempotency-key", "k1")

    assert code == 0 and json.loads(out)["id"] == "j1"
    request, _ = httpserver.log[0]
    assert request.get_json()["idempotencyKey"] == "k1"


# --- schedules and limits -----------------------------------------------------------------

SCHEDULE = {
    "name": "weekly",
    "cron": "0 9 * * 1",
    "timezone": "UTC",
    "enabled": True,
    "job": {"name": "report"},
    "nextRunAt": "2026-12-07T09:00:00Z",
}


def test_schedules_list_shows_a_table(httpserver, capsys, env):
    httpserver.expect_request("/api/v1/spaces/space1/schedules").respond_with_json(
        {"schedules": [SCHEDULE]}
    )

    code, out, _ = _run(capsys, "schedules", "list")

    assert code == 0
    assert out.splitlines()[1].split() == [
        "weekly",
        "0",
        "9",
        "*",
        "*",
        "1",
        "UTC",
        "yes",
        "report",
        "2026-12-07T09:00:00Z",
    ]


def test_schedules_create_sends_the_job_template(httpserver, capsys, env):
    httpserver.expect_request(
        "/api/v1/spaces/space1/schedules",
        method="POST",
        json={
            "name": "weekly",
            "cron": "0 9 * * 1",
            "job": {"name": "report", "payload": {"a": 1}, "priority": 5},
            "timezone": "Europe/Paris",
            "enabled": False,
        },
    ).respond_with_json(SCHEDULE, status=201)

    code, _, _ = _run(
        capsys,
        "schedules",
        "create",
        "weekly",
        "--cron",
        "0 9 * * 1",
        "--job-name",
        "report",
        "--payload",
        '{"a": 1}',
        "--job",
        '{"priority": 5}',
        "--timezone",
        "Europe/Paris",
        "--paused",
    )

    assert code == 0


@pytest.mark.parametrize("verb", ["pause", "resume"])
def test_schedules_pause_and_resume(httpserver, capsys, env, verb):
    httpserver.expect_request(
        f"/api/v1/spaces/space1/schedules/weekly/{verb}", method="POST"
    ).respond_with_json({**SCHEDULE, "enabled": verb == "resume"})

    code, out, _ = _run(capsys, "schedules", verb, "weekly")

    assert code == 0 and json.loads(out)["enabled"] is (verb == "resume")


def test_limits_set_and_get(httpserver, capsys, env):
    httpserver.expect_request(
        "/api/v1/spaces/space1/limits/email.send",
        method="PUT",
        # A PUT replaces the whole limit: the per-key values not given are sent as null.
        json={"concurrency": 5, "rate": 2.5, "keyConcurrency": None, "keyRate": None},
    ).respond_with_json({"name": "email.send", "concurrency": 5, "rate": 2.5})
    httpserver.expect_request("/api/v1/spaces/space1/limits").respond_with_json(
        {
            "limits": [
                {"name": "email.send", "concurrency": 5, "rate": 2.5},
                {"name": "b", "concurrency": 1, "rate": None},
            ]
        }
    )

    assert (
        _run(capsys, "limits", "set", "email.send", "--concurrency", "5", "--rate", "2.5")[0] == 0
    )
    code, out, _ = _run(capsys, "limits", "get", "email.send")
    assert code == 0 and json.loads(out) == {"name": "email.send", "concurrency": 5, "rate": 2.5}
    code, out, _ = _run(capsys, "limits", "get")
    assert [item["name"] for item in json.loads(out)] == ["email.send", "b"]


def test_limits_set_needs_a_limit(capsys, env):
    code, _, err = _run(capsys, "limits", "set", "email.send")

    assert code == 2 and "--concurrency" in err


# --- the installed command ----------------------------------------------------------------


def test_the_jobyard_command_is_installed():
    script = shutil.which("jobyard", path=str(Path(sys.executable).parent)) or shutil.which(
        "jobyard"
    )
    assert script, "the jobyard console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBYARD_")}

    result = subprocess.run(
        [script, "jobs", "list"], capture_output=True, text=True, env=env, check=False
    )

    assert result.returncode == 2
    assert "pass --url or set JOBYARD_URL" in result.stderr
