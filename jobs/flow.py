"""Flow control: per-name and per-key concurrency and rate limits, enforced inside poll and claim.

Poll and claim lock the NameLimit rows of the names they may hand out (in primary-key order,
so two pollers never deadlock), count what is in flight under that lock, and consume rate
tokens before committing. Only poll and claim move jobs into flight, and both hold the lock
while they do, so concurrent pollers can never exceed a limit: a completion racing with a poll
can only lower the in-flight count the poll saw. Names without limits take none of this path.

Limits per key (docs/workflows.md, "Concurrency per key") live on the same row: for each
distinct `concurrency_key` of the name, at most `key_concurrency` in flight and `key_rate`
handed out per second. The name's row lock covers them too, so keys need no locks of their own.
Under that lock the poll reads, once, the in-flight count of every key of the name that has
jobs in flight and the token buckets (KeyBucket) that are not full; keys at their limit are
then left out of the candidate query itself, so they never hold back the jobs of other keys.
A job without a key is bound by the name's limits only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q

from .models import Job, KeyBucket, NameLimit

IN_FLIGHT = (Job.Status.DELIVERED, Job.Status.RUNNING)
# Any limit at all on a NameLimit row (the rows a poll must lock).
ANY_LIMIT = (
    Q(concurrency__isnull=False)
    | Q(rate__isnull=False)
    | Q(key_concurrency__isnull=False)
    | Q(key_rate__isnull=False)
)
# Candidates fetched per round when keys are limited: more than asked for, so that a round
# skipping jobs of keys it just filled still finds work of other keys.
KEYED_OVERFETCH = 4
# Rounds of candidates one poll looks through beyond one per limited name, when keys are
# limited (each round leaves out the names and keys the previous ones filled).
KEYED_ROUNDS = 8
UNLIMITED = 10**6


def _capacity(rate: float) -> float:
    # Bucket capacity is one second's worth of the rate (at least one job).
    return max(1.0, rate)


def _refill(tokens: float, refilled_at: datetime | None, rate: float, now: datetime) -> float:
    elapsed = (now - refilled_at).total_seconds() if refilled_at else math.inf
    return min(_capacity(rate), tokens + max(0.0, elapsed) * rate)


def full_after(rate: float) -> timedelta:
    """How long an emptied bucket of RATE takes to be full again (then it needs no row)."""
    return timedelta(seconds=_capacity(rate) / rate)


@dataclass
class Allowance:
    limit: NameLimit
    left: int  # jobs of this name this poll may still hand out
    # Per key (when the row limits keys): jobs in flight of each key with any in flight, and
    # the token buckets of keys served recently; a key absent from them has 0 and a full one.
    key_in_flight: dict[str, int] = field(default_factory=dict)
    key_tokens: dict[str, float] = field(default_factory=dict)
    touched_keys: set[str] = field(default_factory=set)
    now: datetime | None = None  # the poll's clock: when touched buckets were refilled

    @property
    def keyed(self) -> bool:
        return self.limit.key_concurrency is not None or bool(self.limit.key_rate)

    def key_open(self, key: str | None) -> bool:
        """Whether one more job of KEY may go out (a job without a key: always)."""
        if key is None or not self.keyed:
            return True
        limit = self.limit
        concurrency, rate = limit.key_concurrency, limit.key_rate
        if concurrency is not None and self.key_in_flight.get(key, 0) >= concurrency:
            return False
        return not (rate and self.key_tokens.get(key, _capacity(rate)) < 1)

    def full_keys(self) -> list[str]:
        """The keys that may hand out nothing more now (left out of the candidate query)."""
        if not self.keyed:
            return []
        keys = set(self.key_in_flight) | set(self.key_tokens)
        return sorted(k for k in keys if not self.key_open(k))

    def take(self, now: datetime, key: str | None = None) -> None:
        self.left -= 1
        limit = self.limit
        if limit.rate:
            limit.tokens -= 1
            limit.refilled_at = now
        if key is not None and self.keyed:
            if limit.key_concurrency is not None:
                self.key_in_flight[key] = self.key_in_flight.get(key, 0) + 1
            if limit.key_rate:
                tokens = self.key_tokens.get(key, _capacity(limit.key_rate))
                self.key_tokens[key] = tokens - 1
                self.touched_keys.add(key)


def space_has_limits(space_id: int) -> bool:
    return NameLimit.objects.filter(space_id=space_id).exists()


def lock_allowances(space_id: int, names: list[str] | None, now: datetime) -> dict[str, Allowance]:
    """Lock the limits relevant to a poll of NAMES (all names when None); what each allows now."""
    qs = NameLimit.objects.select_for_update().filter(space_id=space_id).filter(ANY_LIMIT)
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
            limit.tokens = _refill(limit.tokens, limit.refilled_at, limit.rate, now)
            limit.refilled_at = now
            left = min(left, math.floor(limit.tokens))
        out[limit.name] = Allowance(limit=limit, left=max(0, int(min(left, UNLIMITED))), now=now)
    _load_keys(space_id, [a for a in out.values() if a.keyed and a.left > 0], now)
    return out


def _load_keys(space_id: int, allowances: list[Allowance], now: datetime) -> None:
    """Per-key state of the keyed ALLOWANCES: one query for the in-flight counts, one for the
    buckets; read under the rows' locks, so no other poll changes them meanwhile."""
    by_name = {a.limit.name: a for a in allowances if a.limit.key_concurrency is not None}
    if by_name:
        # The partial index job_inflight_key_idx: rows in flight with a key, of these names.
        rows = (
            Job.objects.filter(
                space_id=space_id,
                name__in=list(by_name),
                status__in=IN_FLIGHT,
                concurrency_key__isnull=False,
            )
            .values_list("name", "concurrency_key")
            .annotate(n=Count("id"))
            .order_by()
        )
        for name, key, n in rows:
            by_name[name].key_in_flight[key] = n
    by_limit = {a.limit.pk: a for a in allowances if a.limit.key_rate}
    if by_limit:
        # Only buckets refilled within full_after(rate) can hold less than a full bucket.
        recent = Q()
        for allowance in by_limit.values():
            since = now - full_after(allowance.limit.key_rate)
            recent |= Q(limit_id=allowance.limit.pk, refilled_at__gt=since)
        for bucket in KeyBucket.objects.filter(recent):
            allowance = by_limit[bucket.limit_id]
            allowance.key_tokens[bucket.key] = _refill(
                bucket.tokens, bucket.refilled_at, allowance.limit.key_rate, now
            )


def save_allowances(allowances: dict[str, Allowance]) -> None:
    for allowance in allowances.values():
        limit, now = allowance.limit, allowance.now
        if limit.rate:
            NameLimit.objects.filter(pk=limit.pk).update(
                tokens=limit.tokens, refilled_at=limit.refilled_at
            )
        if allowance.touched_keys and now is not None:
            KeyBucket.objects.bulk_create(
                [
                    KeyBucket(
                        limit=limit, key=key, tokens=allowance.key_tokens[key], refilled_at=now
                    )
                    for key in sorted(allowance.touched_keys)
                ],
                update_conflicts=True,
                unique_fields=["limit", "key"],
                update_fields=["tokens", "refilled_at"],
            )
            # Buckets idle long enough to be full again say nothing a missing row does not.
            KeyBucket.objects.filter(
                limit=limit, refilled_at__lte=now - full_after(limit.key_rate)
            ).delete()


def open_filter(allowances: dict[str, Allowance]) -> Q:
    """What the candidate query leaves out: names with no allowance left, and the keys at their
    limit of the names still open (a job without a key is never left out for its key)."""
    q = Q()
    closed = sorted(name for name, a in allowances.items() if a.left <= 0)
    if closed:
        q &= ~Q(name__in=closed)
    for name, allowance in sorted(allowances.items()):
        if allowance.left > 0:
            full = allowance.full_keys()
            if full:
                q &= ~Q(name=name, concurrency_key__in=full)
    return q


def batch_size(allowances: dict[str, Allowance], wanted: int) -> int:
    """Candidates to fetch for WANTED jobs: more when keys are limited (see KEYED_OVERFETCH)."""
    if any(a.keyed and a.left > 0 for a in allowances.values()):
        return wanted * KEYED_OVERFETCH
    return wanted


def max_rounds(allowances: dict[str, Allowance]) -> int:
    """Rounds a poll may take: every round but the last fills at least one name (or key)."""
    keyed = any(a.keyed and a.left > 0 for a in allowances.values())
    return len(allowances) + 1 + (KEYED_ROUNDS if keyed else 0)


def pick(
    candidates: list[Job], allowances: dict[str, Allowance], count: int, now: datetime
) -> tuple[list[Job], set[str]]:
    """The candidates (in queue order) within the limits, and the names now exhausted.

    Keys filled on the way are kept in the allowances (open_filter leaves them out next)."""
    chosen: list[Job] = []
    exhausted: set[str] = set()
    for job in candidates:
        if len(chosen) >= count:
            break
        allowance = allowances.get(job.name)
        if allowance is None:
            chosen.append(job)
        elif allowance.left > 0:
            key = job.concurrency_key
            if not allowance.key_open(key):
                continue  # its key is full: the next candidates may be of other keys
            allowance.take(now, key)
            chosen.append(job)
            if allowance.left == 0:
                exhausted.add(job.name)
        else:
            exhausted.add(job.name)
    return chosen, exhausted


def refusal(allowance: Allowance, key: str | None) -> str | None:
    """Why a claim of one job of KEY is refused now (None: it may go out)."""
    if allowance.left <= 0:
        return f"The flow-control limit of {allowance.limit.name!r} is reached; try later"
    if not allowance.key_open(key):
        return (
            f"The per-key limit of {allowance.limit.name!r} is reached for this "
            "concurrencyKey; try later"
        )
    return None


def set_limit(
    space,
    name: str,
    *,
    concurrency: int | None,
    rate: float | None,
    key_concurrency: int | None = None,
    key_rate: float | None = None,
) -> NameLimit | None:
    """Create, change or (all None) remove the limits of NAME in SPACE."""
    if concurrency is None and rate is None and key_concurrency is None and key_rate is None:
        NameLimit.objects.filter(space=space, name=name).delete()
        return None
    limit, _ = NameLimit.objects.update_or_create(
        space=space,
        name=name,
        defaults={
            "concurrency": concurrency,
            "rate": rate,
            "key_concurrency": key_concurrency,
            "key_rate": key_rate,
        },
    )
    if not key_rate:
        KeyBucket.objects.filter(limit=limit).delete()
    return limit


def limit_json(limit: NameLimit) -> dict:
    return {
        "name": limit.name,
        "concurrency": limit.concurrency,
        "rate": limit.rate,
        "keyConcurrency": limit.key_concurrency,
        "keyRate": limit.key_rate,
    }


def keys_in_flight(space_id: int, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per name: (distinct keys with jobs in flight, the most in flight of any one key)."""
    out: dict[str, tuple[int, int]] = {}
    rows = (
        Job.objects.filter(
            space_id=space_id,
            name__in=list(names),
            status__in=IN_FLIGHT,
            concurrency_key__isnull=False,
        )
        .values_list("name", "concurrency_key")
        .annotate(n=Count("id"))
        .order_by()
    )
    for name, _key, n in rows:
        keys, most = out.get(name, (0, 0))
        out[name] = (keys + 1, max(most, n))
    return out
