"""The dashboard shows groups: a member's job page has its group's progress (done/total, the
outcomes, the completion job once fired), and the Jobs page lists the newest groups."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from jobs import services
from jobs.models import Job, JobGroup

pytestmark = pytest.mark.django_db

GROUP = {"name": "thumbs", "on_complete": {"name": "mail"}}


def _get(client, cast, name: str, **kwargs) -> str:
    client.force_login(cast.alice)
    response = client.get(reverse(name, kwargs={"public_id": cast.space.public_id, **kwargs}))
    assert response.status_code == 200
    return response.content.decode()


def _members(cast, n: int) -> list[Job]:
    items = [{"name": "thumb", "group": GROUP} for _ in range(n)]
    return [job for job, _ in services.create_jobs(cast.space, items)]


def _complete(cast, job: Job) -> None:
    claimed = services.claim_job(cast.space, job.pk)
    services.complete_job(claimed, None, claim_id=claimed.claim_id)


def test_a_member_s_page_shows_its_group_s_progress(client, cast):
    a, b, c = _members(cast, 3)
    _complete(cast, a)
    services.kill_job(Job(pk=b.pk, space_id=cast.space.pk))

    body = _get(client, cast, "dashboard-job", job_id=c.pk)

    progress = re.search(r"data-group-progress>(.*?)</p>", body, re.S).group(1)
    assert "2 / 3" in progress
    assert "1 completed, 0 dead, 1 killed" in progress
    assert "data-group-completion" not in body


def test_a_fired_group_links_its_completion_job(client, cast):
    (member,) = _members(cast, 1)
    _complete(cast, member)
    completion_id = JobGroup.objects.get().completion_job_id

    body = _get(client, cast, "dashboard-job", job_id=member.pk)

    link = re.search(r'href="([^"]+)" data-group-completion', body).group(1)
    assert link.endswith(f"/{completion_id}") or completion_id in link


def test_a_plain_job_s_page_has_no_group_card(client, cast):
    job, _ = services.create_job(cast.space, {"name": "plain"})

    assert "data-group" not in _get(client, cast, "dashboard-job", job_id=job.pk)


def test_the_jobs_page_lists_the_newest_groups(client, cast):
    first = _members(cast, 2)
    _complete(cast, first[0])

    body = _get(client, cast, "dashboard-space")

    row = re.search(rf'data-group-row="{first[0].group_id}">(.*?)</tr>', body, re.S).group(1)
    assert "thumbs" in row
    assert "1 / 2" in row
    assert "waiting" in row


def test_a_space_without_groups_has_no_groups_card(client, cast):
    assert "data-groups" not in _get(client, cast, "dashboard-space")


def test_charlie_cannot_see_alice_s_member_page(client, cast):
    (member,) = _members(cast, 1)
    client.force_login(cast.charlie)
    url = reverse("dashboard-job", kwargs={"public_id": cast.space.public_id, "job_id": member.pk})

    assert client.get(url).status_code == 404
