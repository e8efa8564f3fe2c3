"""Schemathesis over the OpenAPI document, valid and invalid inputs (--mode all), against a
live server: no 5xx, and every response matches the documented status codes, content types and
schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import services
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def _schemathesis() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("schemathesis")
    if not found:
        pytest.skip("schemathesis is not installed")
    return [found]


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_or_schema_violation(live_server, settings, tmp_path):
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    space = SpaceFactory()
    jobs = services.create_jobs(space, [{"name": f"seed{i}"} for i in range(5)])
    key = issue_key(space, sorted(scopes.ALL))
    # Real ids for the path parameters, so requests reach the handlers and not only the 404s.
    (tmp_path / "schemathesis.toml").write_text(
        "[parameters]\n"
        f'"path.spaceId" = "{space.public_id}"\n'
        f'"path.space_id" = "{space.public_id}"\n'
        f'"path.jobId" = "{jobs[0][0].id}"\n'
    )
    command = _schemathesis() + [
        "run",
        f"{live_server.url}/api/v1/schema?format=json",
        "--url",
        live_server.url,
        "--header",
        f"Authorization: Bearer {key}",
        "--mode",
        "all",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        "--max-time",
        "75",
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-shrink",
        "--request-timeout",
        # Above the longest long poll (waitSeconds 20), which is a valid, slow request.
        "25",
    ]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=170, env=env, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
