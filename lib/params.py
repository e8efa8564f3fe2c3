"""Integer query-string parameters, read one way for the API, the dashboard and the streams.

The callers differ only in what a bad value means, and say so by arguments:

- the API reports it: `int_param(params, "limit", default=50, low=1, high=100, errors=errors)`
  adds "Must be an integer" or "Must be between 1 and 100" under the name and returns 50;
- the dashboard ignores it and moves a number into range: `int_param(params, "after",
  clamp=True)` is None for junk and 0 for a negative number;
- a stream flags it: `int_param(params, "since", invalid=-1)` is -1 for junk or a negative
  number, so the socket can tell "not given" (None) from "given wrong".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DEFAULT: Any = object()


def int_param(
    params: Mapping[str, Any],
    name: str,
    *,
    default: int | None = None,
    low: int = 0,
    high: int | None = None,
    clamp: bool = False,
    errors: dict[str, list[str]] | None = None,
    invalid: int | None = _DEFAULT,
) -> int | None:
    """The integer parameter NAME of PARAMS (a QueryDict or a plain dict).

    Absent or blank: DEFAULT. An integer from LOW to HIGH (no upper bound when HIGH is None):
    that integer. Outside the range with CLAMP: the nearest bound. Anything else is invalid:
    the problem is added to ERRORS (when given) under NAME, and the answer is INVALID (DEFAULT
    unless given).
    """
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        problem = "Must be an integer"
    else:
        if clamp:
            value = max(low, value)
            return value if high is None else min(value, high)
        if value >= low and (high is None or value <= high):
            return value
        problem = (
            f"Must be between {low} and {high}" if high is not None else f"Must be {low} or more"
        )
    if errors is not None:
        errors[name] = [problem]
    return default if invalid is _DEFAULT else invalid
