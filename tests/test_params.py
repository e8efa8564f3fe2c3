"""lib/params.py: one integer parameter reader, with each caller's idea of a bad value."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from lib.params import int_param


def test_absent_or_blank_is_the_default():
    assert int_param({}, "n") is None
    assert int_param({"n": ""}, "n", default=7) == 7
    assert int_param(QueryDict("n="), "n", default=7) == 7


@pytest.mark.parametrize(
    ("raw", "answer", "problem"),
    [
        ("5", 5, None),
        ("1", 1, None),
        ("100", 100, None),
        ("0", 50, "Must be between 1 and 100"),
        ("101", 50, "Must be between 1 and 100"),
        ("x", 50, "Must be an integer"),
        ("1.5", 50, "Must be an integer"),
    ],
)
def test_the_api_reports_a_bad_value_and_carries_on_with_the_default(raw, answer, problem):
    errors: dict[str, list[str]] = {}

    value = int_param(
        QueryDict(f"limit={raw}"), "limit", default=50, low=1, high=100, errors=errors
    )

    assert value == answer
    assert errors == ({"limit": [problem]} if problem else {})


@pytest.mark.parametrize(("raw", "answer"), [("3", 3), ("0", 0), ("-4", 0), ("x", None)])
def test_the_dashboard_ignores_junk_and_clamps_negatives(raw, answer):
    assert int_param(QueryDict(f"after={raw}"), "after", clamp=True) == answer


@pytest.mark.parametrize(("raw", "answer"), [("3", 3), ("0", 0), ("-4", -1), ("x", -1)])
def test_a_stream_flags_a_bad_since(raw, answer):
    assert int_param({"since": raw}, "since", invalid=-1) == answer


def test_clamping_keeps_to_both_bounds():
    assert int_param({"n": "500"}, "n", low=1, high=100, clamp=True) == 100
    assert int_param({"n": "-5"}, "n", low=1, high=100, clamp=True) == 1
