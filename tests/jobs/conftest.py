from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tests.factories import issue_key


@pytest.fixture
def client_for():
    """A DRF client for a clear KEY."""

    def make(key: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture
def create(api, space):
    """Create a job through the API; returns its id."""

    def make(**fields) -> str:
        body = {"name": "email.send", "payload": {"to": "a@example.com"}} | fields
        response = api.post(f"/api/v1/spaces/{space.public_id}/jobs", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    return make


@pytest.fixture
def poll(api, space):
    def do(**body) -> list[dict]:
        response = api.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", body, format="json")
        assert response.status_code == 200, response.content
        return response.json()["jobs"]

    return do


@pytest.fixture
def list_pages(api, space):
    """Every page of GET /spaces/{id}/jobs with PARAMS, following the Link header's next URL;
    each page is the answer's bare array."""

    def walk(params: dict | None = None, max_pages: int = 100) -> list[list[dict]]:
        pages = []
        response = api.get(f"/api/v1/spaces/{space.public_id}/jobs", params or {})
        for _ in range(max_pages):
            assert response.status_code == 200, response.content
            pages.append(response.json())
            link = response.get("Link")
            if link is None:
                return pages
            match = NEXT_LINK.fullmatch(link)
            assert match, link
            response = api.get(match["url"])
        raise AssertionError(f"more than {max_pages} pages")

    return walk


# `<url>; rel="next"` (RFC 8288), as the job list writes it.
NEXT_LINK = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


def status_of(job_id: str) -> str:
    return Job.objects.get(pk=job_id).status


@pytest.fixture
def other_key(cast):
    return issue_key(cast.other_space)
