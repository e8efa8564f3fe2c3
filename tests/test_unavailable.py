from unittest import mock

from django.db import OperationalError


def test_a_database_outage_answers_503_json_with_retry_after(api, space):
    with mock.patch(
        "jobs.services.create_job", side_effect=OperationalError("server closed the connection")
    ):
        response = api.post(f"/api/v1/spaces/{space.public_id}/jobs", {"name": "x"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response["Retry-After"] == "1"
