"""An exception as a job's error: type, message and traceback as separate fields."""

from __future__ import annotations

import json

import pytest

from jobyard import errors
from jobyard.errors import MAX_ERROR_CHARS, error_info, parse_error


class BadInput(Exception):
    pass


def _raise(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_the_three_fields_are_separate():
    info = error_info(_raise(ValueError("bad size: 0")))

    assert info["type"] == "ValueError"
    assert info["message"] == "bad size: 0"
    assert info["traceback"].startswith("Traceback (most recent call last)")
    assert "raise exc" in info["traceback"]
    assert info["traceback"].rstrip().endswith("ValueError: bad size: 0")


def test_a_class_of_your_own_is_named_with_its_module():
    info = error_info(_raise(BadInput("no")))

    assert info["type"] == f"{__name__}.BadInput"


def test_an_exception_without_a_message_has_its_class_name_as_message():
    assert error_info(_raise(KeyError()))["message"] == "KeyError"


def test_a_huge_message_is_cut_and_the_traceback_ends_with_the_cut_one():
    info = error_info(_raise(RuntimeError("at the bottom " + "x" * 20_000)))

    assert len(json.dumps(info)) <= MAX_ERROR_CHARS
    assert info["message"].startswith("at the bottom") and info["message"].endswith("(cut)")
    assert info["traceback"].rstrip().endswith("RuntimeError: " + info["message"])
    assert info["traceback"].startswith("Traceback (most recent call last)")


def test_a_huge_traceback_is_cut_from_its_start_and_keeps_the_last_frames():
    exc = None
    for step in range(300):  # a chain of causes: each adds its own traceback
        try:
            raise RuntimeError(f"step {step}") from exc
        except RuntimeError as caught:
            exc = caught

    info = error_info(exc)

    assert len(json.dumps(info)) <= MAX_ERROR_CHARS
    assert len(json.dumps(info)) > MAX_ERROR_CHARS - 200  # filled, not emptied
    assert info["message"] == "step 299"
    assert info["traceback"].startswith("... (cut)")
    assert info["traceback"].rstrip().endswith("RuntimeError: step 299")
    assert "step 0" not in info["traceback"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("timeout", {"type": None, "message": "timeout", "traceback": None}),
        (
            '{"type": "ValueError", "message": "bad", "traceback": "T"}',
            {"type": "ValueError", "message": "bad", "traceback": "T"},
        ),
        ({"type": "X", "message": "m"}, {"type": "X", "message": "m", "traceback": None}),
        ("{not json", {"type": None, "message": "{not json", "traceback": None}),
    ],
)
def test_a_jobs_error_reads_back_as_fields(value, expected):
    assert parse_error(value) == expected


def test_a_conflict_code_picks_its_class(httpserver, client):
    httpserver.expect_request("/api/v1/jobs/j1/complete").respond_with_json(
        {"error": "The job was killed", "code": "job_killed"}, status=409
    )

    with pytest.raises(errors.JobKilled):
        client.complete("j1", None, claim_id="c1")
