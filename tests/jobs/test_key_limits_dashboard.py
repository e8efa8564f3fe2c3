"""Per-key limits in the dashboard's Limits tab: shown, set, changed, and every error at once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs import flow, services
from jobs.models import NameLimit


def limits_url(space) -> str:
    return reverse("dashboard-limits", kwargs={"public_id": space.public_id})


def test_the_form_sets_and_changes_per_key_limits(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        limits_url(cast.space), {"name": "sync", "key_concurrency": "1", "key_rate": "0.5"}
    )
    assert response.status_code == 302
    limit = NameLimit.objects.get(space=cast.space, name="sync")
    assert (limit.concurrency, limit.rate, limit.key_concurrency, limit.key_rate) == (
        None,
        None,
        1,
        0.5,
    )
    client.post(limits_url(cast.space), {"name": "sync", "concurrency": "10", "key_rate": ""})
    limit.refresh_from_db()
    assert (limit.concurrency, limit.key_concurrency, limit.key_rate) == (10, None, None)


def test_the_form_reports_every_bad_value_at_once(client, cast):
    client.force_login(cast.alice)
    response = client.post(
        limits_url(cast.space),
        {"name": "sync", "concurrency": "0", "key_concurrency": "1.5", "key_rate": "-2"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"concurrency", "key_concurrency", "key_rate"}
    assert not NameLimit.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a", "key_concurrency": "0"}, "greater than or equal to 1"),
        ({"name": "a", "key_rate": "0"}, "greater than or equal to 0.001"),
        ({"name": "a", "key_rate": "nan"}, "Enter a number"),
    ],
)
def test_bad_per_key_values_are_form_errors(client, cast, data, message):
    client.force_login(cast.alice)
    response = client.post(limits_url(cast.space), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not NameLimit.objects.exists()


def test_the_page_shows_per_key_limits_and_the_keys_in_flight(client, cast):
    flow.set_limit(cast.space, "sync", concurrency=None, rate=None, key_concurrency=2, key_rate=3)
    services.create_jobs(
        cast.space, [{"name": "sync", "concurrency_key": k} for k in ("a", "a", "a", "b")]
    )
    services.poll_jobs(cast.space, count=10)  # a, a and b: the third a waits
    client.force_login(cast.bob)
    response = client.get(limits_url(cast.space))
    assert response.status_code == 200
    row = response.context["rows"][0]
    assert (row.in_flight, row.keys_in_flight, row.most_of_one_key) == (3, 2, 2)
    body = response.content.decode()
    assert "(at most 2 each)" in body


def test_the_edit_link_fills_the_per_key_fields(client, cast):
    flow.set_limit(cast.space, "sync", concurrency=4, rate=None, key_concurrency=1, key_rate=0.5)
    client.force_login(cast.alice)
    form = client.get(limits_url(cast.space), {"edit": "sync"}).context["form"]
    assert form.initial["key_concurrency"] == 1
    assert form.initial["key_rate"] == 0.5


def test_members_cannot_set_per_key_limits(client, cast):
    client.force_login(cast.bob)
    response = client.post(limits_url(cast.space), {"name": "a", "key_concurrency": "1"})
    assert response.status_code == 403
    client.force_login(cast.charlie)
    response = client.post(limits_url(cast.space), {"name": "a", "key_concurrency": "1"})
    assert response.status_code == 404
    assert not NameLimit.objects.exists()
