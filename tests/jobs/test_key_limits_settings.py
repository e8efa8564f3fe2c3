"""Per-key limits through `manage.py space_settings` (--key-limit, --no-key-limit)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs import flow
from jobs.models import NameLimit
from tests.factories import SpaceFactory


def run(*args: str) -> str:
    out = StringIO()
    call_command("space_settings", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def space(db):
    return SpaceFactory(name="crm")


def limits(space) -> dict[str, tuple]:
    return {
        row.name: (row.concurrency, row.rate, row.key_concurrency, row.key_rate)
        for row in NameLimit.objects.filter(space=space)
    }


def test_key_limit_sets_per_key_values_and_keeps_the_names(space):
    flow.set_limit(space, "sync", concurrency=10, rate=None)
    run("--space", "crm", "--key-limit", "sync:1", "--key-limit", "mail::0.5")
    assert limits(space) == {"sync": (10, None, 1, None), "mail": (None, None, None, 0.5)}


def test_limit_keeps_the_per_key_values(space):
    flow.set_limit(space, "sync", concurrency=None, rate=None, key_concurrency=1)
    run("--space", "crm", "--limit", "sync:5:2")
    assert limits(space) == {"sync": (5, 2.0, 1, None)}


def test_limit_and_key_limit_together(space):
    run("--space", "crm", "--limit", "sync:5", "--key-limit", "sync:1:3")
    assert limits(space) == {"sync": (5, None, 1, 3.0)}


def test_no_key_limit_removes_only_the_per_key_values(space):
    flow.set_limit(space, "sync", concurrency=5, rate=None, key_concurrency=1)
    flow.set_limit(space, "mail", concurrency=None, rate=None, key_concurrency=2)
    run("--space", "crm", "--no-key-limit", "sync", "--no-key-limit", "mail")
    # A name left with no limit at all has no row.
    assert limits(space) == {"sync": (5, None, None, None)}


def test_no_limit_removes_the_per_key_values_too(space):
    flow.set_limit(space, "sync", concurrency=5, rate=None, key_concurrency=1)
    run("--space", "crm", "--no-limit", "sync")
    assert limits(space) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key-limit", "sync:0"], "concurrency must be between"),
        (["--key-limit", "sync::0"], "rate must be between"),
        (["--key-limit", "sync"], "NAME:CONCURRENCY"),
        (["--key-limit", "sync:1", "--key-limit", "sync:2"], "given more than once"),
        (["--key-limit", "sync:1", "--no-key-limit", "sync"], "both name sync"),
        (["--key-limit", "sync:1", "--no-limit", "sync"], "both name sync"),
    ],
)
def test_bad_key_limits_change_nothing(space, args, message):
    with pytest.raises(CommandError, match=message):
        run("--space", "crm", *args)
    assert limits(space) == {}


def test_per_key_limits_are_in_the_output_and_the_json(space):
    out = run("--space", "crm", "--limit", "sync:4", "--key-limit", "sync:1:0.5")
    assert "limits: sync=4/- per key 1/0.5" in out
    report = json.loads(run("--space", "crm", "--json"))
    assert report["limits"] == {
        "sync": {"concurrency": 4, "rate": None, "keyConcurrency": 1, "keyRate": 0.5}
    }
