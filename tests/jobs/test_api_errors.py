"""Errors under /api/ are the API's JSON whatever Django answers them with, DEBUG on or off."""

from __future__ import annotations

import pytest

UNKNOWN_PATHS = [
    "/api/v1/nothing/here",
    "/api/v1/",
    "/api/",
    "/api",
    "/api/v2/spaces/x/jobs",
    "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/",  # a real route with a trailing slash
    "/api/v1/spaces/sp_x/jobs/",
    "/api/v1/docs/",
]


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_an_unknown_api_path_is_a_json_404(api, debug, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not found", "code": "not_found"}
    # Not Django's debug page, which lists the URL patterns.
    assert b"urlpatterns" not in response.content and b"spaces/<str" not in response.content


def test_an_unknown_api_path_is_404_for_any_method_without_a_key(client, debug):
    for method in ("get", "post", "put", "delete", "patch"):
        response = getattr(client, method)("/api/v1/nope")
        assert response.status_code == 404, method
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/api/v1/spaces/{space}/jobs", "GET, POST"),
        ("delete", "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/claim", "POST"),
        ("post", "/api/v1/schema", "GET"),
        ("post", "/api/v1/docs", "GET"),
        ("delete", "/api/v1/docs", "GET"),
    ],
)
def test_a_wrong_method_is_a_json_405_with_allow(api, space, debug, method, path, allow):
    response = getattr(api, method)(path.format(space=space.public_id))
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": f'Method "{method.upper()}" not allowed.',
        "code": "method_not_allowed",
    }
    assert {m.strip() for m in response["Allow"].split(",")} >= {
        m.strip() for m in allow.split(",")
    }


def test_pages_outside_the_api_keep_djangos_html_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    # /apix is not under /api/.
    assert client.get("/apix")["Content-Type"].startswith("text/html")
