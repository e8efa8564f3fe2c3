from __future__ import annotations

from django.db import models
from django.db.models import Q

from lib.jsonsafe import SafeJSONField
from spaces.models import Space


class Schedule(models.Model):
    """A recurring job: a cron expression in a time zone plus the template of the job it makes."""

    class Overlap(models.TextChoices):
        ALLOW = "allow", "Allow overlapping runs"
        SKIP = "skip", "Skip while the previous job is unfinished"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=5, choices=Overlap.choices, default=Overlap.ALLOW)

    # The template of every job this schedule creates (API field names, as for POST .../jobs).
    job_template = SafeJSONField(default=dict)

    # The next tick to fire. Schedulers advance it with a compare-and-swap, so a tick fires once.
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job_id = models.CharField(max_length=26, blank=True, default="")
    last_skipped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["space_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="schedule_unique_name_in_space")
        ]
        indexes = [
            # scheduler tick: WHERE enabled AND next_run_at <= now() ORDER BY next_run_at
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="schedule_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} {self.timezone})"

    @property
    def job_name(self) -> str:
        return self.job_template.get("name", "")
