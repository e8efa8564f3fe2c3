from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from jobs.models import Job
from notifications.models import SpaceChannels
from orgs.models import Membership, Organization
from spaces import scopes
from spaces.models import ApiKey, Space


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "password")
        if create:
            self.save(update_fields=["password"])


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


CHANNEL_FIELDS = {f.name for f in SpaceChannels._meta.concrete_fields} - {"space"}


class SpaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Space

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"space-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through Space.create, so every space has its public progress key as in production.
        space = model_class.create(kwargs.pop("organization"), kwargs.pop("name"))
        # Notification settings (slack_webhook_url=..., push_url=...) go to the space's
        # SpaceChannels row, made only when some are given, as the first setting saved does.
        channels = {f: kwargs.pop(f) for f in list(kwargs) if f in CHANNEL_FIELDS}
        if channels:
            SpaceChannels.objects.create(space=space, **channels)
        if kwargs:
            for field, value in kwargs.items():
                setattr(space, field, value)
            space.save()
        return space


def issue_key(space: Space, scope_list=None, name: str = "test key") -> str:
    """A clear API key for SPACE with SCOPE_LIST (default: everything a worker and producer needs)."""
    if scope_list is None:
        scope_list = [scopes.WORKER, scopes.CREATE, scopes.KILL, scopes.RETRY, scopes.READ_PROGRESS]
    _, clear = ApiKey.issue(space, name, list(scope_list))
    return clear


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    space = factory.SubFactory(SpaceFactory)
    name = "test.job"
    payload = factory.LazyFunction(lambda: {"n": 1})


def stored_channels(space: Space) -> SpaceChannels:
    """SPACE's notification settings as stored now; the defaults (all off) while it has none."""
    return SpaceChannels.objects.filter(space_id=space.pk).first() or SpaceChannels()
