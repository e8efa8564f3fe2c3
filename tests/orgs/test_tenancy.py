from jobs.models import Job
from orgs.models import Organization
from spaces.models import Space


def test_users_see_only_their_organizations(cast):
    assert list(Organization.objects.for_user(cast.alice)) == [cast.org]
    assert list(Organization.objects.for_user(cast.bob)) == [cast.org]
    assert list(Organization.objects.for_user(cast.charlie)) == [cast.other_org]


def test_users_see_only_spaces_of_their_organizations(cast):
    assert list(Space.objects.for_user(cast.alice)) == [cast.space]
    assert list(Space.objects.for_user(cast.charlie)) == [cast.other_space]


def test_anonymous_users_see_nothing(cast):
    from django.contrib.auth.models import AnonymousUser

    assert not Organization.objects.for_user(AnonymousUser()).exists()
    assert not Space.objects.for_user(AnonymousUser()).exists()


def test_roles_decide_who_manages(cast):
    assert cast.org.memberships.get(user=cast.alice).can_manage
    assert not cast.org.memberships.get(user=cast.bob).can_manage
    assert cast.org.role_of(cast.charlie) is None


def test_job_ids_are_time_sortable_ulids(cast):
    first = Job.objects.create(space=cast.space, name="a")
    second = Job.objects.create(space=cast.space, name="b")
    assert len(first.id) == 26
    assert first.id < second.id
    assert list(Job.objects.filter(space=cast.space)) == [second, first]


def test_space_names_are_unique_within_an_org_only(cast):
    import pytest
    from django.db import IntegrityError, transaction

    Space.create(cast.other_org, "shared-name")
    Space.create(cast.org, "shared-name")
    with pytest.raises(IntegrityError), transaction.atomic():
        Space.create(cast.org, "shared-name")
