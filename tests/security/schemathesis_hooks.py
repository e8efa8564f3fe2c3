"""Schemathesis checks for the security runs (loaded through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import os

import schemathesis

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@schemathesis.check
def read_only_key_never_writes(ctx, response, case) -> bool | None:
    """With the read-only key (JOBYARD_READ_ONLY_RUN=1), no write may ever succeed."""
    if os.environ.get("JOBYARD_READ_ONLY_RUN") != "1":
        return None
    if case.method.upper() in WRITES and 200 <= response.status_code < 300:
        raise AssertionError(
            f"auth bypass: a read-only key got {response.status_code} on "
            f"{case.method.upper()} {case.path}"
        )
    return None


# The hostile run (JOBYARD_HOSTILE_RUN=1): every generated body gets one hostile value, from the
# generators of test_hostile_input_properties.py, in place of one of its values (or as the whole
# body). NaN and ±Infinity are left to those property tests: the HTTP client Schemathesis drives
# refuses to send them.


def _hostile_values():
    from datetime import UTC, datetime

    from hypothesis import strategies as st

    def nested(depth, inner):
        for _ in range(depth):
            inner = [inner]
        return inner

    leaves = st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=12),
        st.text(st.sampled_from(["\x00", "\ud800", "\udfff", "a", "\U0001f600"]), min_size=1),
        st.integers(min_value=-(10**130), max_value=10**130),
        st.floats(allow_nan=False, allow_infinity=False),
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from([UTC, None]) | st.timezones(),
        ).map(lambda d: d.isoformat()),
    )
    return st.one_of(leaves, st.builds(nested, st.integers(50, 150), leaves))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _put(body, path, value):
    if not path:
        return value
    import copy

    body = copy.deepcopy(body)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


@schemathesis.hook
def flatmap_body(ctx, body):
    from hypothesis import strategies as st

    if os.environ.get("JOBYARD_HOSTILE_RUN") != "1":
        return st.just(body)
    paths = list(_paths(body))
    return st.tuples(st.sampled_from(paths), _hostile_values()).map(
        lambda pick: _put(body, pick[0], pick[1])
    )


@schemathesis.check
def hostile_values_recorded(ctx, response, case) -> bool | None:
    """In the hostile run, note each answer to a body that carries a hostile value (the test
    checks that the run sent some): its status, one line each, in hostile.log."""
    if os.environ.get("JOBYARD_HOSTILE_RUN") != "1":
        return None
    sent = response.request.body or b""
    if isinstance(sent, str):
        sent = sent.encode("utf-8", "surrogatepass")
    if any(mark in sent for mark in (b"\\ud8", b"\\udb", b"\\udf", b"\\u0000", b"[[[[[[[[[[")):
        with open("hostile.log", "a") as log:
            log.write(f"{response.status_code} {case.method.upper()} {case.path}\n")
    return None
