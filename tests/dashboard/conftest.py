from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.models import Job
from schedules import services as schedule_services
from schedules.models import Schedule
from spaces.models import ApiKey


@pytest.fixture
def job(cast) -> Job:
    return Job.objects.create(space=cast.space, name="email.send", payload={"to": "a@example.com"})


@pytest.fixture
def token_row(cast) -> ApiKey:
    row, _ = ApiKey.issue(cast.space, "ci", ["jobs:read"])
    return row


@pytest.fixture
def schedule(cast) -> Schedule:
    row = Schedule(
        space=cast.space,
        name="hourly-sync",
        cron="@hourly",
        timezone="UTC",
        job_template={"name": "sync.run", "payload": {"full": False}},
    )
    row.next_run_at = schedule_services.compute_next(row, datetime.now(tz=UTC))
    row.save()
    return row


def login(client, user):
    client.force_login(user)
    return client
