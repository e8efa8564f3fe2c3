import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from spaces import keys, scopes
from spaces.auth import resolve_key
from spaces.models import ApiKey
from tests.factories import SpaceFactory, issue_key


def test_a_key_has_the_emit_format_and_high_entropy():
    key = keys.generate()
    assert key.startswith("emit_")
    assert keys.well_formed(key)
    assert len({keys.generate() for _ in range(100)}) == 100


def test_the_database_holds_no_clear_key(db):
    space = SpaceFactory()
    clear = issue_key(space)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, scopes, prefix, digest FROM spaces_apikey")
        rows = cursor.fetchall()
    dump = repr(rows)
    assert clear not in dump
    assert clear[len(keys.KEY_PREFIX) :] not in dump
    assert keys.digest(clear) in dump


def test_a_key_resolves_only_while_active(db):
    space = SpaceFactory()
    row, clear = ApiKey.issue(space, "worker", [scopes.WORKER])
    assert resolve_key(clear) == row
    row.revoke()
    assert resolve_key(clear) is None


def test_a_key_with_the_right_prefix_but_wrong_secret_is_refused(db):
    space = SpaceFactory()
    clear = issue_key(space)
    forged = clear[:-4] + ("AAAA" if not clear.endswith("AAAA") else "BBBB")
    assert keys.lookup_prefix(forged) == keys.lookup_prefix(clear)
    assert resolve_key(forged) is None


@pytest.mark.parametrize("junk", ["", "emit_", "emit_short", "x" * 48, "emit_" + "!" * 43])
def test_malformed_keys_never_resolve(db, junk):
    assert resolve_key(junk) is None


def test_shorthands_expand_to_their_scopes():
    granted = scopes.expand([scopes.WORKER])
    assert {scopes.READ, scopes.POLL, scopes.ACK, scopes.COMPLETE, scopes.FAIL} <= granted
    assert scopes.CREATE not in granted
    assert scopes.READ not in scopes.expand([scopes.WRITE])


def test_unknown_scopes_are_refused(db):
    with pytest.raises(ValueError, match="jobs:fly"):
        ApiKey.issue(SpaceFactory(), "bad", ["jobs:fly"])


def test_every_space_gets_a_public_progress_key(db):
    space = SpaceFactory()
    public = space.api_keys.get(is_public=True)
    assert public.scopes == [scopes.READ_PROGRESS]
    assert resolve_key(space.public_progress_key) == public


def test_public_progress_keys_differ_between_spaces(db):
    assert SpaceFactory().public_progress_key != SpaceFactory().public_progress_key


def test_issue_token_prints_a_working_token_as_json(db, capsys):
    call_command(
        "issue_token", "--space", "ingest", "--scopes", "jobs:worker,jobs:create", "--json"
    )
    import json

    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed = json.loads(last)
    key = resolve_key(printed["token"])
    assert key is not None
    assert key.space.public_id == printed["spaceId"]
    assert key.space.name == "ingest"
    assert key.has_scope(scopes.POLL) and key.has_scope(scopes.CREATE)


def test_issue_token_reuses_a_space_with_that_name(db, capsys):
    call_command("issue_token", "--space", "ingest", "--json")
    call_command("issue_token", "--space", "ingest", "--json")
    from spaces.models import Space

    assert Space.objects.filter(name="ingest").count() == 1


def bootstrap_token(capsys) -> str:
    call_command("bootstrap")
    out = capsys.readouterr().out
    return [line.split()[-1] for line in out.splitlines() if line.startswith("Token:")][-1]


def test_bootstrap_keeps_one_token_per_install_that_authenticates(db, capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = bootstrap_token(capsys)
    second = bootstrap_token(capsys)

    # A worker started with the first token keeps working after `make run` starts again.
    assert second == first
    key = resolve_key(first)
    assert key is not None and key.space.name == "default"
    assert key.space.api_keys.filter(is_public=False, revoked_at__isnull=True).count() == 1
    # It can run every call of the README's producer and worker examples, retry included.
    for scope in ("jobs:create", "jobs:read", "jobs:retry", "jobs:kill", "jobs:worker"):
        assert scope in key.scopes
    assert (tmp_path / "demo_token").stat().st_mode & 0o777 == 0o600


def test_bootstrap_issues_a_new_token_when_the_kept_one_was_revoked(db, capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = bootstrap_token(capsys)
    ApiKey.objects.filter(digest=keys.digest(first)).update(revoked_at=timezone.now())

    second = bootstrap_token(capsys)

    assert second != first and resolve_key(second) is not None
    assert (tmp_path / "demo_token").read_text().strip() == second


def test_api_answers_401_with_identical_bodies_for_unknown_and_wrong_keys(db):
    space = SpaceFactory()
    clear = issue_key(space)
    wrong_secret = clear[:-4] + ("AAAA" if not clear.endswith("AAAA") else "BBBB")
    unknown = keys.generate()
    bodies = []
    for candidate in (wrong_secret, unknown):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {candidate}")
        response = client.get(f"/api/v1/spaces/{space.public_id}/jobs")
        assert response.status_code == 401
        bodies.append(response.json())
    assert bodies[0] == bodies[1]
    assert bodies[0]["code"] == "invalid_api_key"
