from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from spaces.models import Space
from tests.factories import SpaceFactory

pytestmark = pytest.mark.django_db


def space_settings(*args: str) -> str:
    out = StringIO()
    call_command("space_settings", *args, stdout=out)
    return out.getvalue()


def test_space_settings_changes_the_retention_periods():
    space = SpaceFactory()

    out = space_settings(
        "--space",
        space.public_id,
        "--retention-completed-days",
        "7",
        "--retention-failed-days",
        "60",
        "--json",
    )

    report = json.loads(out)
    assert report["changed"] == ["retention"]
    assert report["retention"] == {"completedDays": 7, "failedDays": 60}
    space.refresh_from_db()
    assert (space.retention_completed_days, space.retention_failed_days) == (7, 60)


def test_space_settings_changes_only_the_period_given():
    space = SpaceFactory()

    space_settings("--space", space.public_id, "--retention-failed-days", "90")

    space = Space.objects.get(pk=space.pk)
    assert (space.retention_completed_days, space.retention_failed_days) == (14, 90)


@pytest.mark.parametrize("days", ["0", "-1", "3651"])
def test_space_settings_refuses_periods_out_of_bounds(days):
    space = SpaceFactory()

    with pytest.raises(CommandError, match="between 1 and 3650"):
        space_settings("--space", space.public_id, "--retention-completed-days", days)

    assert Space.objects.get(pk=space.pk).retention_completed_days == 14


def test_space_settings_shows_the_retention_periods():
    space = SpaceFactory()

    out = space_settings("--space", space.public_id)

    assert "retention: completedDays=14, failedDays=30" in out
