"""The dashboard shows workflows: a job's parents and children, the graph roots to leaves with
statuses coloured, and the job list's "blocked" filter."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from jobs import services
from jobs.models import Job

pytestmark = pytest.mark.django_db


def _page(client, cast, job: Job) -> str:
    client.force_login(cast.alice)
    url = reverse("dashboard-job", kwargs={"public_id": cast.space.public_id, "job_id": job.pk})
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _workflow(cast) -> list[Job]:
    results = services.create_jobs(
        cast.space,
        [
            {"name": "extract"},
            {"name": "transform", "depends_on": [0]},
            {"name": "load", "depends_on": [1]},
            {"name": "report", "depends_on": [1], "on_parent_failure": "run"},
        ],
    )
    return [job for job, _ in results]


def test_the_job_page_shows_parents_children_and_the_graph(client, cast):
    extract, transform, load, report = _workflow(cast)
    claimed = services.claim_job(cast.space, extract.pk)
    services.complete_job(claimed, {"rows": 3}, claim_id=claimed.claim_id)

    body = _page(client, cast, transform)

    parents = re.search(r"data-parents>(.*?)</ul>", body, re.S).group(1)
    children = re.search(r"data-children>(.*?)</ul>", body, re.S).group(1)
    assert "extract" in parents and "completed" in parents
    assert "load" in children and "report" in children and "extract" not in children
    graph = re.search(r"<svg[^>]*data-workflow-graph.*?</svg>", body, re.S).group(0)
    # Every job of the workflow, roots first, each coloured by its status.
    statuses = re.findall(r'data-node-status="(\w+)"', graph)
    assert statuses == ["completed", "pending", "blocked", "blocked"]
    assert graph.count("<line") == 3
    assert "wf-current" in graph


def test_a_blocked_job_says_how_many_parents_it_waits_for(client, cast):
    _, _, load, _ = _workflow(cast)

    body = _page(client, cast, load)

    assert "waiting for 1 of 1 parent;" in body
    assert "on parent failure: cancel" in body


def test_a_plain_job_has_no_workflow_card(client, cast):
    job, _ = services.create_job(cast.space, {"name": "plain"})

    assert "data-workflow" not in _page(client, cast, job)


def test_the_job_list_filters_blocked(client, cast):
    extract, transform, *_ = _workflow(cast)
    client.force_login(cast.alice)

    response = client.get(
        reverse("dashboard-space", kwargs={"public_id": cast.space.public_id}),
        {"status": "blocked"},
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert '<option value="blocked" selected' in body or 'value="blocked" selected' in body
    assert transform.pk in body and extract.pk not in body
