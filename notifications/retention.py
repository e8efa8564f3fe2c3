"""Notifications' part in job retention (jobs/retention.py calls these through its hooks,
connected in NotificationsConfig.ready).

Delivery records outlive their job: when retention deletes a job, its deliveries only lose
their job link. They go once they are older than the longer of their space's two retention
periods.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from .models import NotificationDelivery


def detach_deliveries(sender, job_ids: list[str], **kwargs) -> None:
    """Receiver of jobs.retention.jobs_pruned, inside the transaction deleting JOB_IDS."""
    NotificationDelivery.objects.filter(job_id__in=job_ids).update(job=None)


def prune_deliveries(space_ids: list[int], cutoff: datetime, limit: int) -> int:
    """Delete up to LIMIT deliveries of SPACE_IDS made before CUTOFF; returns how many."""
    with transaction.atomic():
        # delivery_space_recent_idx: (space, created_at).
        ids = list(
            NotificationDelivery.objects.filter(space_id__in=space_ids, created_at__lt=cutoff)
            .order_by()
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return 0
        deleted, _ = NotificationDelivery.objects.filter(id__in=ids).delete()
    return deleted
