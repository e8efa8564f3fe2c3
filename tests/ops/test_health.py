from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_answer_whatever_the_host_header(client):
    # Orchestrators probe pods by IP address, which is not in ALLOWED_HOSTS.
    for path in ("/healthz", "/readyz"):
        assert client.get(path, HTTP_HOST="10.1.2.3:8000").status_code == 200


def test_other_paths_still_check_the_host(client):
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@override_settings(REDIS_URL="")
def test_readyz_checks_the_database(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


@override_settings(REDIS_URL="")
def test_readyz_fails_when_the_database_is_down(client):
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("could not connect to server")
    ):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == "error: OperationalError"


def test_readyz_fails_when_redis_is_unreachable(client):
    # Nothing listens on port 1: the connection is refused at once.
    with override_settings(REDIS_URL="redis://:hunter2@127.0.0.1:1/0"):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"] == {"database": "ok", "redis": "error: ConnectionError"}
    assert "hunter2" not in response.content.decode()


def test_readyz_does_not_leak_the_redis_password_into_the_log(client, caplog):
    with override_settings(REDIS_URL="redis://:hunter2@127.0.0.1:1/0"):
        client.get("/readyz")

    assert any("redis check failed" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert "hunter2" not in str(vars(record))


@pytest.mark.redis
def test_readyz_checks_redis_when_configured(client, settings):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_probes_are_not_rate_limited(client, settings):
    # The per-key throttle belongs to the DRF API views; probes are plain Django views.
    settings.API_RATE_LIMIT_PER_SECOND = 1
    settings.REDIS_URL = ""
    statuses = {client.get("/readyz").status_code for _ in range(5)}

    assert statuses == {200}


def test_probe_routes_are_also_in_the_urlconf():
    from django.urls import resolve, reverse

    assert reverse("healthz") == "/healthz"
    assert reverse("readyz") == "/readyz"
    assert resolve("/metrics").url_name == "metrics"
