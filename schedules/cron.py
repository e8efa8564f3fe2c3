"""Cron expressions, computed by croniter in the schedule's own time zone.

Only the five-field form and the `@hourly`-style aliases are accepted: croniter also takes a
sixth (seconds) field, which would let one schedule flood a space with a job per second.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def validate_expression(expr: str) -> str | None:
    """An error message for EXPR, or None when it is a valid five-field expression or alias."""
    expr = expr.strip()
    if expr in ALIASES:
        return None
    if len(expr.split()) != 5:
        return "Use five fields (minute hour day month weekday) or an alias such as @daily"
    if not croniter.is_valid(expr):
        return "Not a valid cron expression"
    return None


def validate_timezone(name: str) -> str | None:
    if name not in available_timezones():
        return f"Unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {name!r}"
    return None


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick strictly after AFTER, as an aware datetime in UTC.

    Ticks are computed on the wall clock of TZ, so `0 9 * * *` stays at 09:00 local across
    daylight-saving changes (a tick that falls in the skipped hour runs when the clock resumes).
    """
    zone = ZoneInfo(tz)
    local = after.astimezone(zone)
    return croniter(expr.strip(), local).get_next(datetime).astimezone(ZoneInfo("UTC"))


def latest_at_or_before(expr: str, tz: str, moment: datetime) -> datetime:
    """The last tick at or before MOMENT (for catching up after downtime)."""
    local = (moment + timedelta(seconds=1)).astimezone(ZoneInfo(tz))
    return croniter(expr.strip(), local).get_prev(datetime).astimezone(ZoneInfo("UTC"))


def upcoming(expr: str, tz: str, after: datetime, count: int = 5) -> list[datetime]:
    out: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = next_after(expr, tz, moment)
        out.append(moment)
    return out
