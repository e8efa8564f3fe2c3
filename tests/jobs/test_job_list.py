"""GET /spaces/{spaceId}/jobs: a bare array, the next page in a Link header, `q` as the
dashboard searches, and unknown parameters refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from jobs import queries
from jobs.models import Job
from tests.factories import JobFactory

from .conftest import NEXT_LINK


def url(space) -> str:
    return f"/api/v1/spaces/{space.public_id}/jobs"


def next_url(response) -> str:
    match = NEXT_LINK.fullmatch(response["Link"])
    assert match, response["Link"]
    return match["url"]


def test_the_list_is_a_bare_array_of_jobs(api, space, create):
    job_id = create(name="mail")
    response = api.get(url(space))
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    (job,) = body
    assert job["id"] == job_id and job["name"] == "mail" and job["status"] == "pending"


def test_the_link_header_keeps_the_filters_and_drops_the_offset(api, space, create):
    ids = [create(name="a") for _ in range(5)]
    create(name="b")
    response = api.get(url(space), {"name": "a", "limit": 2, "offset": 1})
    assert [j["id"] for j in response.json()] == [ids[3], ids[2]]
    link = urlsplit(next_url(response))
    assert link.scheme == "http" and link.netloc == "testserver"
    assert link.path == url(space)
    assert parse_qs(link.query) == {"name": ["a"], "limit": ["2"], "cursor": [ids[2]]}
    second = api.get(next_url(response))
    assert [j["id"] for j in second.json()] == [ids[1], ids[0]]
    assert "Link" not in second


def test_a_full_last_page_has_no_next_link(api, space, create):
    for _ in range(2):
        create()
    response = api.get(url(space), {"limit": 2})
    assert len(response.json()) == 2
    assert "Link" not in response


def test_q_searches_payload_and_error_text(api, space, create):
    wanted = create(payload={"to": "ada@example.com"})
    create(payload={"to": "bob@example.com"})
    failed = create(payload={"to": "carol@example.com"})
    Job.objects.filter(pk=failed).update(status="dead", last_error="SMTP said ada is away")
    found = api.get(url(space), {"q": "ada"}).json()
    assert [j["id"] for j in found] == [failed, wanted]
    dead_only = api.get(url(space), {"q": "ada", "status": "dead"}).json()
    assert [j["id"] for j in dead_only] == [failed]
    assert api.get(url(space), {"q": "nobody"}).json() == []


def test_q_pages_on_through_a_bounded_window(api, space, create, list_pages, monkeypatch):
    # A window of 3: each page looks through at most 3 jobs below its cursor.
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 3)
    ids = [create(payload={"n": i, "hit": i % 3 == 0}) for i in range(8)]
    pages = list_pages({"q": '"hit": true'})
    found = [j["id"] for page in pages for j in page]
    assert found == [ids[6], ids[3], ids[0]]
    assert len(pages) > 1  # the search went on through the Link header


def test_q_with_a_job_id_finds_that_job(api, space, create):
    job_id = create()
    create()
    assert [j["id"] for j in api.get(url(space), {"q": job_id.lower()}).json()] == [job_id]


@pytest.mark.parametrize(
    "params",
    [
        {"search": "ada"},
        {"statuses": "dead"},
        {"page": "2"},
        {"nextCursor": "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        {"name": "a", "Limit": "5"},
    ],
)
def test_unknown_query_parameters_are_400(api, space, create, params):
    create()
    response = api.get(url(space), params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    unknown = [name for name in params if name not in ("name", "limit")]
    assert sorted(body["details"]) == sorted(unknown)
    assert "known: status, name, q, limit, offset, cursor" in body["details"][unknown[0]][0]


def test_drfs_format_parameter_is_not_unknown(api, space, create):
    create()
    response = api.get(url(space), {"format": "json"})
    assert response.status_code == 200
    assert len(response.json()) == 1


@pytest.mark.parametrize("params", [{"q": "x" * 201}, {"q": "a\x00b"}])
def test_bad_search_text_is_400(api, space, params):
    response = api.get(url(space), params)
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["q"]


def test_another_spaces_jobs_are_not_found_by_q(api, space, create):
    theirs = JobFactory(name="secret", payload={"to": "ada@example.com"})
    create(payload={"to": "bob@example.com"})
    assert api.get(url(space), {"q": "ada"}).json() == []
    assert api.get(url(space), {"q": theirs.id}).json() == []
