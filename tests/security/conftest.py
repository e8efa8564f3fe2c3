"""Two tenants for the security tests.

Space B (alice's org "Alice Co") holds the objects under attack: a delivered job whose payload
carries a marker, a schedule, keys and a member. Space A belongs to charlie, an outsider with
his own org, and A's key carries every scope: whatever it reaches in B is a hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from jobs import services
from jobs.models import Job
from orgs.models import Membership
from schedules.models import Schedule
from spaces import scopes
from spaces.models import ApiKey, Space
from tests.factories import issue_key

# Strings that exist only in B's data: none may ever show up in an answer given to A.
JOB_MARKER = "b-payload-marker-6c1e"
SCHEDULE_MARKER = "b-schedule-marker-93fa"
SPACE_NAME = "b-space-marker-51d0"


@dataclass
class Tenants:
    cast: object
    space_a: Space
    space_b: Space
    key_a: str  # every scope, on A
    key_b: str  # every scope, on B
    key_b_row: ApiKey
    job_b: Job  # delivered, so it has a claim id
    claim_b: str
    schedule_b: Schedule
    membership_b: Membership  # bob's membership in B's org

    @property
    def markers(self) -> list[str]:
        return [JOB_MARKER, SCHEDULE_MARKER, SPACE_NAME]


@pytest.fixture
def tenants(cast) -> Tenants:
    space_b = cast.space
    space_b.name = SPACE_NAME
    space_b.save(update_fields=["name"])
    space_a = cast.other_space
    key_a = issue_key(space_a, sorted(scopes.ALL), name="a-all")
    key_b = issue_key(space_b, sorted(scopes.ALL), name="b-all")
    services.create_job(space_b, {"name": "b.job", "payload": {"marker": JOB_MARKER}})
    (job_b,) = services.poll_jobs(space_b)
    schedule_b = _schedule(space_b)
    return Tenants(
        cast=cast,
        space_a=space_a,
        space_b=space_b,
        key_a=key_a,
        key_b=key_b,
        key_b_row=ApiKey.objects.get(space=space_b, name="b-all"),
        job_b=job_b,
        claim_b=job_b.claim_id,
        schedule_b=schedule_b,
        membership_b=Membership.objects.get(organization=cast.org, user=cast.bob),
    )


def _schedule(space: Space) -> Schedule:
    from datetime import UTC, datetime

    from schedules import services as schedule_services

    schedule = Schedule(
        space=space,
        name="nightly",
        cron="0 9 * * *",
        timezone="UTC",
        job_template={"name": "report.build", "payload": {"marker": SCHEDULE_MARKER}},
    )
    schedule.next_run_at = schedule_services.compute_next(schedule, datetime.now(tz=UTC))
    schedule.save()
    return schedule
