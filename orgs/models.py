from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify


class OrganizationQuerySet(models.QuerySet):
    def for_user(self, user) -> OrganizationQuerySet:
        """The organizations USER belongs to: the root of every dashboard query."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Organization(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = self._unique_slug()
        super().save(*args, **kwargs)

    def _unique_slug(self) -> str:
        base = slugify(self.name)[:90] or "org"
        slug, n = base, 2
        while Organization.objects.filter(slug=slug).exists():
            slug, n = f"{base}-{n}", n + 1
        return slug

    def role_of(self, user) -> str | None:
        membership = self.memberships.filter(user=user).first() if user.is_authenticated else None
        return membership.role if membership else None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    # Roles that may manage spaces, tokens, settings and members.
    MANAGERS = (Role.OWNER, Role.ADMIN)

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in self.MANAGERS


def normalize_email(email: str) -> str:
    """The form invitations compare addresses in: trimmed and lower-cased."""
    return (email or "").strip().lower()


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _default_expiry():
    return timezone.now() + Invitation.VALID_FOR


class InvitationError(Exception):
    """An invitation that cannot be accepted, declined or revoked any more; the message says why."""


class InvitationQuerySet(models.QuerySet):
    def open(self) -> InvitationQuerySet:
        """Pending and not expired: the ones that can still be accepted."""
        return self.filter(status=Invitation.Status.PENDING, expires_at__gt=timezone.now())

    def for_invitee(self, user) -> InvitationQuerySet:
        """The invitations addressed to USER: by account, or by an email equal to the account's.

        There is no email verification: an invitation by email belongs to every account that
        carries that address (until one of them answers it).
        """
        if not user.is_authenticated:
            return self.none()
        addressed = Q(user=user)
        email = normalize_email(user.email)
        if email:
            addressed |= Q(user__isnull=True, email=email)
        return self.filter(addressed)


class Invitation(models.Model):
    """An offer of membership: nothing changes in the organization until the invitee accepts.

    Made by username (`user` is that account, or nobody when no account has that username: such
    an invitation can never be accepted and just expires) or by email (`email`, matched against
    the account's email when someone answers). `invitee` is what the inviter typed, and all
    that the organization's members page ever shows of the invitee.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        REVOKED = "revoked", "Revoked"

    VALID_FOR = timedelta(days=7)

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    invitee = models.CharField(max_length=254, help_text="The username or email as typed.")
    # The invited account (by username), then the account that answered (by email too).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="invitations",
    )
    email = models.CharField(max_length=254, blank=True, db_index=True)
    role = models.CharField(max_length=10, choices=Membership.Role.choices)
    token = models.CharField(max_length=64, unique=True, default=_new_token, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_default_expiry)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="invitation_org_status")]

    def __str__(self) -> str:
        return f"{self.invitee} to {self.organization} ({self.role}, {self.status})"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    def _locked_open(self) -> Invitation:
        """This invitation re-read under a row lock; InvitationError unless it is still open."""
        row = Invitation.objects.select_for_update().select_related("organization").get(pk=self.pk)
        if row.status != Invitation.Status.PENDING:
            raise InvitationError(
                f"This invitation was already {row.get_status_display().lower()}."
            )
        if row.is_expired:
            raise InvitationError("This invitation has expired: ask for a new one.")
        return row

    def accept(self, user) -> Membership:
        """USER joins the organization with the invited role. The caller has checked that the
        invitation is addressed to USER (`Invitation.objects.for_invitee`)."""
        with transaction.atomic():
            row = self._locked_open()
            try:
                with transaction.atomic():
                    membership = Membership.objects.create(
                        organization=row.organization, user=user, role=row.role
                    )
            except IntegrityError:
                raise InvitationError(
                    f"You are already a member of {row.organization.name}."
                ) from None
            row._answer(Invitation.Status.ACCEPTED, user)
        return membership

    def decline(self, user) -> None:
        with transaction.atomic():
            self._locked_open()._answer(Invitation.Status.DECLINED, user)

    def revoke(self) -> None:
        """Taken back by the organization; an expired invitation can be revoked too."""
        with transaction.atomic():
            row = Invitation.objects.select_for_update().get(pk=self.pk)
            if row.status != Invitation.Status.PENDING:
                raise InvitationError(
                    f"This invitation was already {row.get_status_display().lower()}."
                )
            row._answer(Invitation.Status.REVOKED, row.user)

    def _answer(self, status: str, user) -> None:
        self.status = status
        self.user = user
        self.answered_at = timezone.now()
        self.save(update_fields=["status", "user", "answered_at"])
