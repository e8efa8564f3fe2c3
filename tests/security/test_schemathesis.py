"""Schemathesis beyond tests/jobs/test_schemathesis.py (which runs the examples, coverage and
fuzzing phases with valid and invalid inputs for a full key):

- the stateful phase (sequences of calls linked through their responses) for a full key;
- every phase, valid and invalid inputs, for a read-only key: besides no 5xx and no schema
  violation, a write may never succeed (the `read_only_key_never_writes` check in
  schemathesis_hooks.py), and requests without the key must be refused (`ignored_auth`).

Both run against a live server, bounded by --max-time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import services
from spaces import scopes
from tests.factories import SpaceFactory, issue_key

from .conftest import _schedule

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
]


def schemathesis() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("schemathesis")
    if not found:
        pytest.skip("schemathesis is not installed")
    return [found]


def run(live_server, tmp_path, key: str, space, job_id: str, *, phases: str, extra_env=None):
    (tmp_path / "schemathesis.toml").write_text(
        "[parameters]\n"
        f'"path.spaceId" = "{space.public_id}"\n'
        f'"path.space_id" = "{space.public_id}"\n'
        f'"path.jobId" = "{job_id}"\n'
        '"path.name" = "nightly"\n'
    )
    checks = CHECKS + (
        ["read_only_key_never_writes", "hostile_values_recorded"] if extra_env else []
    )
    command = schemathesis() + [
        "run",
        f"{live_server.url}/api/v1/schema?format=json",
        "--url",
        live_server.url,
        "--header",
        f"Authorization: Bearer {key}",
        "--mode",
        "all",
        "--checks",
        ",".join(checks),
        "--phases",
        phases,
        "--max-examples",
        "3",
        "--max-time",
        "35",
        "--workers",
        "1",
        "--seed",
        "2",
        "--no-shrink",
        # Above the longest long poll (waitSeconds is at most 20).
        "--request-timeout",
        "30",
    ]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks", "NO_COLOR": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env |= extra_env or {}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    print(output[-4000:])
    return result.returncode, output


@pytest.fixture
def seeded(settings):
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    space = SpaceFactory()
    jobs = services.create_jobs(space, [{"name": f"seed{i}"} for i in range(5)])
    _schedule(space)
    return space, jobs[0][0].id


@pytest.mark.django_db(transaction=True)
def test_the_stateful_phase_finds_no_server_error_schema_violation_or_ignored_auth(
    live_server, tmp_path, seeded
):
    space, job_id = seeded
    key = issue_key(space, sorted(scopes.ALL))
    code, output = run(live_server, tmp_path, key, space, job_id, phases="stateful")
    assert code == 0, output[-6000:]
    # The phase did run: it is skipped when no links between operations are found.
    scenarios = re.search(r"Scenarios:\s+(\d+)", output)
    assert scenarios and int(scenarios.group(1)) > 0, output[-3000:]


@pytest.mark.django_db(transaction=True)
def test_a_read_only_key_never_gets_a_write_through(live_server, tmp_path, seeded):
    space, job_id = seeded
    key = issue_key(space, [scopes.READ, scopes.READ_PROGRESS])
    code, output = run(
        live_server,
        tmp_path,
        key,
        space,
        job_id,
        phases="examples,coverage,fuzzing,stateful",
        extra_env={"JOBYARD_READ_ONLY_RUN": "1"},
    )
    assert code == 0, output[-6000:]
    # Schemathesis reports the operations that only ever answered 401/403: every write of the
    # schema, so each was exercised and none let anything through.
    writes = sum(
        1
        for operations in live_schema(live_server)["paths"].values()
        for method in operations
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
    )
    refused = re.search(r"403 Forbidden \((\d+) operations\)", output)
    assert refused and int(refused.group(1)) == writes, output[-3000:]


def live_schema(live_server) -> dict:
    import requests

    return requests.get(f"{live_server.url}/api/v1/schema?format=json", timeout=10).json()


@pytest.mark.django_db(transaction=True)
def test_hostile_values_in_generated_bodies_find_no_server_error(live_server, tmp_path, seeded):
    """Schemathesis with the hostile generators (schemathesis_hooks.flatmap_body): lone
    surrogates, NUL, 130-digit integers, odd timestamps and deep nesting put in place of one
    value of each generated body. No 5xx, and the answers still match the schema."""
    space, job_id = seeded
    key = issue_key(space, sorted(scopes.ALL))
    code, output = run(
        live_server,
        tmp_path,
        key,
        space,
        job_id,
        phases="fuzzing",
        extra_env={"JOBYARD_HOSTILE_RUN": "1"},
    )
    assert code == 0, output[-6000:]
    answers = (tmp_path / "hostile.log").read_text().splitlines()
    assert len(answers) >= 20, answers
    assert all(int(line.split()[0]) < 500 for line in answers)
    # Hostile bodies reached the handlers that refuse them at the parser.
    assert sum(line.startswith("400 ") for line in answers) >= 10, answers
