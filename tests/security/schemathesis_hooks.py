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
