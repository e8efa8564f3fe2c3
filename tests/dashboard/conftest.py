from __future__ import annotations

import pytest

from jobs.models import Job
from spaces.models import ApiKey


@pytest.fixture
def job(cast) -> Job:
    return Job.objects.create(space=cast.space, name="email.send", payload={"to": "a@example.com"})


@pytest.fixture
def token_row(cast) -> ApiKey:
    row, _ = ApiKey.issue(cast.space, "ci", ["jobs:read"])
    return row


def login(client, user):
    client.force_login(user)
    return client
