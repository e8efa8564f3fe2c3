"""The OpenAPI document (/api/v1/schema): valid OpenAPI 3, and complete where a client or the
docs page relies on it: either key header, a summary and a resource tag per operation, the
errors each operation can answer, and the job list as it is served."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from jobs import services
from spaces import scopes
from tests.factories import issue_key

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def doc(client) -> dict:
    response = client.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def resource_tag(path: str) -> set[str]:
    """The tags an operation on PATH may carry: its resource (jobs: producers' or workers')."""
    if "/schedules" in path:
        return {"schedules"}
    if "/limits" in path:
        return {"limits"}
    return {"jobs", "workers"}


def test_the_document_is_valid_openapi(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.")


def test_either_key_header_is_enough(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer emit_<secret>`",
    }
    assert schemes["apiKeyHeader"]["type"] == "apiKey"
    assert schemes["apiKeyHeader"]["in"] == "header"
    assert schemes["apiKeyHeader"]["name"] == "X-Api-Key"
    for path, method, op in operations(doc):
        # Two requirement objects: alternatives. One object naming both would require both.
        assert op["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}], (method, path)


def test_every_operation_has_a_summary_and_its_resources_tag(doc):
    declared = [tag["name"] for tag in doc["tags"]]
    assert declared == [tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]]
    ids = []
    for path, method, op in operations(doc):
        assert op.get("summary", "").strip(), (method, path)
        assert len(op["tags"]) == 1, (method, path, op["tags"])
        assert op["tags"][0] in resource_tag(path), (method, path, op["tags"])
        assert op["tags"][0] in declared
        ids.append(op["operationId"])
    assert len(ids) == len(set(ids))
    assert "spaces" not in {op["tags"][0] for _, _, op in operations(doc)}


def test_every_operation_documents_its_errors(doc):
    for path, method, op in operations(doc):
        responses = op["responses"]
        expected = {"401", "403", "429"}
        if "{" in path:
            expected.add("404")
        if method != "get" or any(p["in"] == "query" for p in op.get("parameters", [])):
            expected.add("400")
        if method != "get":
            expected |= {"413", "415"}
        assert expected <= set(responses), (method, path, sorted(expected - set(responses)))
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert response["description"].strip(), (method, path, code)
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


def test_every_error_a_bad_body_gets_is_documented(doc, space, settings):
    # A malformed body, a wrong media type and an over-size body to every operation that can
    # take one: each answer's status is among the operation's documented responses.
    settings.API_MAX_BODY_BYTES = 1000
    key = issue_key(space, sorted(scopes.ALL))
    ((job, _),) = services.create_jobs(space, [{"name": "x"}])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    jobs_url = f"/api/v1/spaces/{space.public_id}"
    assert (
        api.post(
            f"{jobs_url}/schedules",
            {"name": "s", "cron": "@hourly", "job": {"name": "x"}},
            format="json",
        ).status_code
        == 201
    )
    assert api.put(f"{jobs_url}/limits/x", {"concurrency": 1}, format="json").status_code == 200
    bodies = [
        ("{bad", "application/json", "400"),
        ("x", "text/plain", "415"),
        ("[" + "1," * 1000 + "1]", "application/json", "413"),
    ]
    tried = 0
    for path, method, op in operations(doc):
        if method == "get":
            continue
        target = (
            path.replace("{spaceId}", space.public_id)
            .replace("{jobId}", job.id)
            .replace("{name}", "s" if "/schedules" in path else "x")
        )
        for body, content_type, status in bodies:
            response = getattr(api, method)(target, body, content_type=content_type)
            assert str(response.status_code) in op["responses"], (method, path, status)
            assert response.status_code < 500
            tried += 1
    assert tried >= 3 * 20


def test_the_job_list_is_documented_as_it_is_served(doc):
    op = doc["paths"]["/api/v1/spaces/{spaceId}/jobs"]["get"]
    query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert query == {"status", "name", "q", "limit", "offset", "cursor"}
    ok = op["responses"]["200"]
    assert "Link" in ok["headers"]
    schema = ok["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert doc["components"]["schemas"][name] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Job"},
    }


def test_the_list_parameters_are_the_ones_it_reads(doc, api, space):
    # Every documented query parameter is accepted; a made-up one is refused.
    op = doc["paths"]["/api/v1/spaces/{spaceId}/jobs"]["get"]
    values = {"status": "pending", "name": "a", "q": "x", "limit": "5", "cursor": "0" * 26}
    query = [param for param in op["parameters"] if param["in"] == "query"]
    assert len(query) == 6
    for param in query:
        name = param["name"]
        response = api.get(f"/api/v1/spaces/{space.public_id}/jobs", {name: values.get(name, "0")})
        assert response.status_code == 200, (name, response.content)
    assert api.get(f"/api/v1/spaces/{space.public_id}/jobs", {"nope": "1"}).status_code == 400


def test_the_docs_page_is_swagger_ui_from_our_own_static_files(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/api/v1/schema" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith(settings.STATIC_URL) for a in assets), assets
    assert "http://" not in html and "https://" not in html
    assert '"validatorUrl": null' in html  # no call to the public validator
