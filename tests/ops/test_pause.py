from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from notifications import outbox
from spaces.models import Space
from tests.factories import SpaceFactory, issue_key


def _api(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def pushes(httpserver):
    httpserver.expect_request("/push", method="POST").respond_with_data("", status=204)
    outbox.reset_breaker()

    def received() -> list[dict]:
        return [json.loads(req.get_data()) for req, _ in httpserver.log if req.path == "/push"]

    yield received
    outbox.reset_breaker()


@pytest.mark.django_db(transaction=True)
def test_a_paused_space_hands_out_nothing_and_holds_pushes_until_resumed(httpserver, pushes):
    # given: a space that pushes to a worker, paused from the command line
    space = SpaceFactory(push_url=httpserver.url_for("/push"))
    api = _api(issue_key(space))
    assert "Paused space" in command("pause_space", space.public_id)

    # when: a job is created (creation still works) and workers poll and claim
    created = api.post(f"/api/v1/spaces/{space.public_id}/jobs", {"name": "a"}, format="json")
    poll = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {"count": 5}, format="json")
    job_id = created.json()["id"]
    claim = api.post(f"/api/v1/jobs/{job_id}/claim")

    # then: nothing was handed out and no push went out
    assert created.status_code == 201
    assert poll.status_code == 200 and poll.json() == {"jobs": []}
    assert claim.status_code == 409 and claim.json()["code"] == "space_paused"
    assert Job.objects.get(pk=job_id).status == "pending"
    assert pushes() == []

    # when: the space is resumed
    assert "Resumed space" in command("resume_space", space.public_id)

    # then: the workers are woken, and the job is handed out again
    assert [body["jobId"] for body in pushes()] == [job_id]
    polled = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json").json()
    assert [job["id"] for job in polled["jobs"]] == [job_id]


@pytest.mark.django_db
def test_pause_and_resume_say_when_there_was_nothing_to_do():
    space = SpaceFactory()

    assert "was not paused" in command("resume_space", space.public_id)
    command("pause_space", space.public_id)
    paused_at = Space.objects.get(pk=space.pk).paused_at
    assert "already paused" in command("pause_space", space.public_id)
    # a second pause keeps the original time
    assert Space.objects.get(pk=space.pk).paused_at == paused_at


@pytest.mark.django_db
def test_pause_finds_a_space_by_name_within_an_org():
    space = SpaceFactory(name="billing")
    SpaceFactory(name="billing")

    with pytest.raises(CommandError, match="Several spaces"):
        command("pause_space", "billing")
    command("pause_space", "billing", "--org", space.organization.slug)

    assert Space.objects.get(pk=space.pk).is_paused
    assert Space.objects.filter(paused_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_pause_rejects_an_unknown_space():
    with pytest.raises(CommandError, match="No space"):
        command("pause_space", "nope")
