"""The standard cast: alice owns an org with a space, bob is a member there, charlie is an
outsider with an org and space of his own."""

from __future__ import annotations

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
