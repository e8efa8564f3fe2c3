from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from jobs.models import Job, JobEvent
from lib.fields import EncryptedJSONField, EncryptedTextField
from spaces.models import Space


def new_push_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class SpaceChannels(models.Model):
    """A space's notification channels: its Slack and HTTP push settings, and the secret that
    signs its pushes and job callbacks.

    At most one row per space, made on first use by SpaceChannels.of() (saving a setting, the
    first callback or push, the settings page showing the secret). A space without one has no
    channel configured.
    """

    class SlackEvent(models.TextChoices):
        CREATED = "created", "Created"
        STARTED = "started", "Started"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed (every failed attempt)"
        DEAD = "dead", "Dead"
        KILLED = "killed", "Killed"

    space = models.OneToOneField(
        Space, on_delete=models.CASCADE, primary_key=True, related_name="channels"
    )

    # Slack: an empty URL turns it off. The URL is a secret (it grants posting), so it is
    # encrypted at rest, like the push header values and the signing secret (lib/crypto.py).
    slack_webhook_url = EncryptedTextField(blank=True, default="")
    slack_events = models.JSONField(default=list, blank=True)
    slack_last_error = models.TextField(blank=True, default="")
    slack_disabled_at = models.DateTimeField(null=True, blank=True)

    # HTTP push (worker wake): POST job.pending to push_url, signed with push_secret (which
    # signs job callbacks too).
    push_url = models.CharField(max_length=500, blank=True, default="")
    push_headers = EncryptedJSONField(default=dict, blank=True)
    push_names = models.JSONField(default=list, blank=True)  # empty: every job name
    push_secret = EncryptedTextField(default=new_push_secret, editable=False)
    push_last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "space channels"
        verbose_name_plural = "space channels"

    def __str__(self) -> str:
        return f"channels of space {self.space_id}"

    @classmethod
    def of(cls, space: Space) -> SpaceChannels:
        """SPACE's channels, made (nothing configured, a new signing secret) if it has none."""
        try:
            return space.channels  # loaded with select_related("channels"), or one query
        except cls.DoesNotExist:
            pass
        row, _ = cls.objects.get_or_create(space=space)
        space.channels = row
        return row

    @classmethod
    def find(cls, space: Space) -> SpaceChannels | None:
        """SPACE's channels, or None when it has none (then nothing is configured)."""
        try:
            return space.channels
        except cls.DoesNotExist:
            return None


class NotificationDelivery(models.Model):
    """One row per attempt to send anything anywhere."""

    class Channel(models.TextChoices):
        SLACK = "slack", "Slack"
        PUSH = "push", "HTTP push"
        CALLBACK = "callback", "Job callback"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="deliveries")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=50)
    # Only the host: full URLs can carry secrets (Slack webhook tokens).
    target_host = models.CharField(max_length=255, blank=True, default="")
    attempt = models.PositiveSmallIntegerField(default=1)
    success = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [
            # settings page: WHERE space_id = ? ORDER BY created_at DESC LIMIT n
            models.Index(fields=["space", "-created_at"], name="delivery_space_recent_idx"),
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.success else "failed"
        return f"{self.channel} {self.event} #{self.attempt} {outcome}"


class PendingNotification(models.Model):
    """The notification outbox: what still has to be sent, written right after the job
    event's transaction commits and deleted once sent (or given up on).

    A row is "leased" while a Celery task owns it (`lease_until` in the future). A row whose
    lease is empty (the broker was down when it was written) or has run out (its task message
    was lost) is picked up again by flush_outbox(). `token` names the task message that owns
    the row: a re-enqueue gets a new token, so an old message that still turns up is ignored.
    """

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    job_event = models.ForeignKey(
        JobEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=10, choices=NotificationDelivery.Channel.choices)
    # The messages still to send, in order: Slack events ("failed", "dead"), "job.pending",
    # or the callback's status.
    events = models.JSONField(default=list)
    attempt = models.PositiveSmallIntegerField(default=1)  # of the next try
    token = models.CharField(max_length=32, default="", blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # flush_outbox: WHERE lease_until IS NULL OR lease_until < now ORDER BY id
            models.Index(fields=["lease_until"], name="pending_notif_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {','.join(self.events)} (attempt {self.attempt})"


class EndpointBreaker(models.Model):
    """A notification endpoint that stopped answering (timed out, refused the connection, sent
    a body past the cap). While `open_until` is in the future, deliveries to it wait in the
    outbox instead of holding a Celery worker for their whole deadline, so one endpoint that
    hangs cannot hold up the other spaces' notifications (notifications/breaker.py).
    """

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=NotificationDelivery.Channel.choices)
    # host[:port] of the endpoint, never its path or query (they can carry secrets).
    endpoint = models.CharField(max_length=300)
    failures = models.PositiveIntegerField(default=0)  # in a row
    open_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # breaker.admit() / trip(): WHERE space_id = ? AND channel = ? AND endpoint = ?
            models.UniqueConstraint(
                fields=["space", "channel", "endpoint"], name="endpoint_breaker_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.endpoint} ({self.failures} failures)"
