"""Flow control: per-name concurrency and rate limits, enforced inside poll and claim.

Poll and claim lock the NameLimit rows of the names they may hand out (in primary-key order,
so two pollers never deadlock), count what is in flight under that lock, and consume rate
tokens before committing. Only poll and claim move jobs into flight, and both hold the lock
while they do, so concurrent pollers can never exceed a limit: a completion racing with a poll
can only lower the in-flight count the poll saw. Names without limits take none of this path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from .models import Job, NameLimit

IN_FLIGHT = (Job.Status.DELIVERED, Job.Status.RUNNING)


@dataclass
class Allowance:
    limit: NameLimit
    left: int  # jobs of this name this poll may still hand out

    def take(self, now: datetime) -> None:
        self.left -= 1
        if self.limit.rate:
            self.limit.tokens -= 1
            self.limit.refilled_at = now


def space_has_limits(space_id: int) -> bool:
    return NameLimit.objects.filter(space_id=space_id).exists()


def lock_allowances(space_id: int, names: list[str] | None, now: datetime) -> dict[str, Allowance]:
    """Lock the limits relevant to a poll of NAMES (all names when None); what each allows now."""
    qs = (
        NameLimit.objects.select_for_update()
        .filter(space_id=space_id)
        .filter(Q(concurrency__isnull=False) | Q(rate__isnull=False))
    )
    if names:
        qs = qs.filter(name__in=names)
    out: dict[str, Allowance] = {}
    for limit in qs.order_by("pk"):
        left = math.inf
        if limit.concurrency is not None:
            in_flight = Job.objects.filter(
                space_id=space_id, name=limit.name, status__in=IN_FLIGHT
            ).count()
            left = min(left, limit.concurrency - in_flight)
        if limit.rate:
            elapsed = (now - limit.refilled_at).total_seconds() if limit.refilled_at else math.inf
            # Bucket capacity is one second's worth of the rate (at least one job).
            capacity = max(1.0, limit.rate)
            limit.tokens = min(capacity, limit.tokens + elapsed * limit.rate)
            limit.refilled_at = now
            left = min(left, math.floor(limit.tokens))
        out[limit.name] = Allowance(limit=limit, left=max(0, int(min(left, 10**6))))
    return out


def save_allowances(allowances: dict[str, Allowance]) -> None:
    for allowance in allowances.values():
        if allowance.limit.rate:
            NameLimit.objects.filter(pk=allowance.limit.pk).update(
                tokens=allowance.limit.tokens, refilled_at=allowance.limit.refilled_at
            )


def pick(
    candidates: list[Job], allowances: dict[str, Allowance], count: int, now: datetime
) -> tuple[list[Job], set[str]]:
    """The candidates (in queue order) within the limits, and the names now exhausted."""
    chosen: list[Job] = []
    exhausted: set[str] = set()
    for job in candidates:
        if len(chosen) >= count:
            break
        allowance = allowances.get(job.name)
        if allowance is None:
            chosen.append(job)
        elif allowance.left > 0:
            allowance.take(now)
            chosen.append(job)
            if allowance.left == 0:
                exhausted.add(job.name)
        else:
            exhausted.add(job.name)
    return chosen, exhausted


def set_limit(space, name: str, *, concurrency: int | None, rate: float | None) -> NameLimit | None:
    """Create, change or (both None) remove the limits of NAME in SPACE."""
    if concurrency is None and rate is None:
        NameLimit.objects.filter(space=space, name=name).delete()
        return None
    limit, _ = NameLimit.objects.update_or_create(
        space=space, name=name, defaults={"concurrency": concurrency, "rate": rate}
    )
    return limit


def limit_json(limit: NameLimit) -> dict:
    return {"name": limit.name, "concurrency": limit.concurrency, "rate": limit.rate}
