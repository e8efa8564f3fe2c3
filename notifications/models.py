from __future__ import annotations

from django.db import models

from jobs.models import Job
from spaces.models import Space


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
