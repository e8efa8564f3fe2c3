"""The standard cast: alice owns an org with a space, bob is a member there, charlie is an
outsider with an org and space of his own."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from django.db import connection

from orgs.models import Membership
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
    UserFactory,
    issue_key,
)


@dataclass
class Cast:
    alice: object
    bob: object
    charlie: object
    org: object
    space: object
    other_org: object
    other_space: object


@pytest.fixture
def cast(db) -> Cast:
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    charlie = UserFactory(username="charlie")
    org = OrganizationFactory(name="Alice Co")
    MembershipFactory(organization=org, user=alice, role=Membership.Role.OWNER)
    MembershipFactory(organization=org, user=bob, role=Membership.Role.MEMBER)
    other_org = OrganizationFactory(name="Charlie Co")
    MembershipFactory(organization=other_org, user=charlie, role=Membership.Role.OWNER)
    return Cast(
        alice=alice,
        bob=bob,
        charlie=charlie,
        org=org,
        space=SpaceFactory(organization=org, name="main"),
        other_org=other_org,
        other_space=SpaceFactory(organization=other_org, name="main"),
    )


@pytest.fixture
def space(db):
    return SpaceFactory()


@pytest.fixture
def key(space) -> str:
    """A key for `space` with worker, create, kill and retry scopes."""
    return issue_key(space)


@pytest.fixture
def api(key):
    """A DRF test client that sends `key`."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL)")
    for item in items:
        if "postgres" in item.keywords and not settings.IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


# How long a live_server request may go on after its test before the test fails.
LIVE_SERVER_GRACE_SECONDS = 5


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fails a test that leaves a live_server request running (before its teardown flushes the
    database): a request served on after its test ends, such as a killed worker's long poll,
    writes under the next tests."""
    result = yield
    if "live_server" in getattr(item, "fixturenames", ()):
        deadline = time.monotonic() + LIVE_SERVER_GRACE_SECONDS
        while (alive := _live_server_requests()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive:
            pytest.fail(
                f"{len(alive)} live_server request(s) still running after the test: "
                "serve long polls from a server process of their own (tests/client/conftest.py)"
            )
    return result


def _live_server_requests() -> list[threading.Thread]:
    # socketserver.ThreadingMixIn names each request thread after its target.
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]
