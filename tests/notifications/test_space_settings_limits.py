from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs import flow
from jobs.models import NameLimit
from tests.factories import SpaceFactory, stored_channels


def run(*args: str) -> str:
    out = StringIO()
    call_command("space_settings", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def space(db):
    return SpaceFactory(name="media")


def limits(space) -> dict[str, tuple]:
    return {row.name: (row.concurrency, row.rate) for row in NameLimit.objects.filter(space=space)}


def test_limit_sets_concurrency_rate_or_both(space):
    run(
        "--space", "media",
        "--limit", "img.resize:4",
        "--limit", "video.encode::0.5",
        "--limit", "pdf.render:-:10",
        "--limit", "mail.send:2:5",
    )  # fmt: skip

    assert limits(space) == {
        "img.resize": (4, None),
        "video.encode": (None, 0.5),
        "pdf.render": (None, 10.0),
        "mail.send": (2, 5.0),
    }


def test_limit_replaces_a_limit_and_no_limit_removes_one(space):
    flow.set_limit(space, "img.resize", concurrency=4, rate=1.0)
    flow.set_limit(space, "mail.send", concurrency=1, rate=None)

    run("--space", "media", "--limit", "img.resize::3", "--no-limit", "mail.send")

    assert limits(space) == {"img.resize": (None, 3.0)}


def test_a_name_with_colons_keeps_them(space):
    run("--space", "media", "--limit", "billing:invoice:7", "--limit", "a:b:c:2:1")

    assert limits(space) == {"billing:invoice": (7, None), "a:b:c": (2, 1.0)}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("img.resize", "write NAME:CONCURRENCY[:RATE]"),
        ("img.resize:0", "concurrency must be between 1 and 100000"),
        ("img.resize:0:5", "concurrency must be between 1 and 100000"),
        ("img.resize:1.5", "not a whole number"),
        ("img.resize::0", "rate must be between 0.001 and 100000"),
        ("img.resize::nan", "rate must be between"),
        ("img.resize::", "give a concurrency, a rate or both"),
        (":3", "the job name must be 1 to 200 characters"),
    ],
)
def test_bad_limits_are_refused_before_anything_changes(space, spec, message):
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(
            "--space",
            "media",
            "--slack-url",
            "https://hooks.slack.com/services/T/B/X",
            "--limit",
            spec,
        )

    assert stored_channels(space).slack_webhook_url == ""
    assert not NameLimit.objects.exists()


def test_the_same_name_in_limit_and_no_limit_is_an_error(space):
    with pytest.raises(CommandError, match="both name img.resize"):
        run("--space", "media", "--limit", "img.resize:2", "--no-limit", "img.resize")
    assert not NameLimit.objects.exists()


def test_limits_are_in_the_output_and_the_json(space):
    out = run("--space", "media", "--limit", "img.resize:4:2.5")
    assert "Updated: limits" in out
    assert "limits: img.resize=4/2.5" in out
    assert limits(space) == {"img.resize": (4, 2.5)}

    report = json.loads(run("--space", "media", "--json"))
    assert report["limits"] == {"img.resize": {"concurrency": 4, "rate": 2.5}}
    assert report["changed"] == []


def test_a_space_without_limits_says_so(space):
    assert "  limits: -" in run("--space", "media")


def test_limits_of_another_space_are_not_touched(space):
    other = SpaceFactory(name="other")
    flow.set_limit(other, "img.resize", concurrency=9, rate=None)

    run("--space", "media", "--no-limit", "img.resize")

    assert limits(other) == {"img.resize": (9, None)}
