from __future__ import annotations

import secrets
from datetime import datetime

from django.db import models, transaction
from django.utils import timezone
from ulid import ULID

from orgs.models import Organization

from . import keys, scopes


def new_public_id() -> str:
    return str(ULID())


def new_push_secret() -> str:
    """Named by migrations 0001 and 0002 (the signing secret was a Space field until 0004; it
    is notifications.SpaceChannels.push_secret now)."""
    return "whsec_" + secrets.token_urlsafe(32)


class SpaceQuerySet(models.QuerySet):
    def for_user(self, user) -> SpaceQuerySet:
        """Spaces of the organizations USER is a member of."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization__memberships__user=user)


class Space(models.Model):
    # Notification channels (Slack, HTTP push, the signing secret) are notifications'
    # SpaceChannels, one row per space (space.channels).
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="spaces")
    name = models.CharField(max_length=100)
    public_id = models.CharField(max_length=26, unique=True, default=new_public_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    # Operations: pause stops polls and claims; retention prunes finished jobs.
    paused_at = models.DateTimeField(null=True, blank=True)
    retention_completed_days = models.PositiveIntegerField(default=14)
    retention_failed_days = models.PositiveIntegerField(default=30)  # dead and killed

    # Stream state, updated only by the event sequencer (jobs/events.py) under this row's lock:
    # the last per-space event seq handed out and the number of jobs per status.
    event_seq = models.BigIntegerField(default=0, editable=False)
    status_counts = models.JSONField(default=dict, blank=True, editable=False)

    objects = SpaceQuerySet.as_manager()

    class Meta:
        ordering = ["organization_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="space_unique_name_in_org"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.name}"

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def public_progress_key(self) -> str:
        return keys.public_progress_key(self.public_id)

    @classmethod
    @transaction.atomic
    def create(cls, organization: Organization, name: str) -> Space:
        """A new space, with its public progress-only key."""
        space = cls.objects.create(organization=organization, name=name)
        ApiKey.objects.create(
            space=space,
            name="Public progress key",
            scopes=scopes.PUBLIC_PROGRESS,
            prefix=keys.lookup_prefix(space.public_progress_key),
            digest=keys.digest(space.public_progress_key),
            is_public=True,
        )
        return space


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    # Clear-text start of the key, for lookup (indexed) and display; the rest is only a digest.
    prefix = models.CharField(max_length=20, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    is_public = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(
        cls, space: Space, name: str, scope_list: list[str], created_by=None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns (row, clear key). The clear key is never stored or shown again."""
        bad = scopes.unknown(scope_list)
        if bad:
            raise ValueError(f"Unknown scopes: {', '.join(bad)}")
        clear = keys.generate()
        row = cls.objects.create(
            space=space,
            name=name,
            scopes=sorted(set(scope_list)),
            prefix=keys.lookup_prefix(clear),
            digest=keys.digest(clear),
            created_by=created_by,
        )
        return row, clear

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def granted(self) -> frozenset[str]:
        return scopes.expand(self.scopes)

    def has_scope(self, scope: str) -> bool:
        return scope in self.granted

    def revoke(self, when: datetime | None = None) -> None:
        if self.revoked_at is None:
            self.revoked_at = when or timezone.now()
            self.save(update_fields=["revoked_at"])
