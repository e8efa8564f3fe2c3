from __future__ import annotations

from django.urls import reverse

from spaces import keys, scopes
from spaces.models import ApiKey


def _url(cast):
    return reverse("dashboard-tokens", kwargs={"public_id": cast.space.public_id})


def test_a_new_token_is_shown_once_and_works(client, cast):
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"name": "ingest", "scopes": ["jobs:create", "jobs:read"]})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    clear = response.context["new_key"]["clear"]
    assert keys.well_formed(clear)
    assert clear in response.content.decode()
    row = ApiKey.objects.get(space=cast.space, name="ingest")
    assert row.scopes == ["jobs:create", "jobs:read"]
    assert row.created_by == cast.alice
    assert keys.matches(clear, row.digest)
    # shown once: the next visit lists the prefix only
    html = client.get(_url(cast)).content.decode()
    assert clear not in html
    assert row.prefix in html


def test_the_worker_preset_grants_the_worker_scopes(client, cast):
    client.force_login(cast.alice)
    client.post(_url(cast), {"name": "worker", "worker_preset": "on"})
    row = ApiKey.objects.get(space=cast.space, name="worker")
    assert row.scopes == sorted(scopes.WORKER_PRESET)


def test_a_token_needs_a_scope(client, cast):
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"name": "nothing"})
    assert "Pick at least one scope" in response.content.decode()
    assert not ApiKey.objects.filter(name="nothing").exists()


def test_unknown_scopes_are_rejected(client, cast):
    client.force_login(cast.alice)
    response = client.post(_url(cast), {"name": "bad", "scopes": ["root:everything"]})
    assert response.status_code == 200
    assert not ApiKey.objects.filter(name="bad").exists()


def test_revoke_stops_the_token(client, cast, token_row):
    client.force_login(cast.alice)
    url = reverse(
        "dashboard-token-revoke", kwargs={"public_id": cast.space.public_id, "key_id": token_row.pk}
    )
    client.post(url)
    token_row.refresh_from_db()
    assert token_row.revoked_at is not None


def test_tokens_of_another_space_cannot_be_revoked(client, cast):
    other, _ = ApiKey.issue(cast.other_space, "theirs", ["jobs:read"])
    client.force_login(cast.alice)
    url = reverse(
        "dashboard-token-revoke", kwargs={"public_id": cast.space.public_id, "key_id": other.pk}
    )
    assert client.post(url).status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_the_public_progress_key_is_shown(client, cast):
    client.force_login(cast.alice)
    assert cast.space.public_progress_key in client.get(_url(cast)).content.decode()
