"""Cron expressions, computed by croniter in the schedule's own time zone.

Only the five-field form and the `@hourly`-style aliases are accepted: croniter also takes a
sixth (seconds) field, which would let one schedule flood a space with a job per second.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

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
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        # Parses, but names a date that never comes (`0 0 30 2 *`, `0 0 31 4 *`).
        return "This expression never fires (no such date)"
    return None


def validate_timezone(name: str) -> str | None:
    if name not in available_timezones():
        return f"Unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {name!r}"
    return None


ALIAS_FIELDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _fixed_hour(expr: str) -> bool:
    """True unless the hour field is `*`: such a schedule names wall-clock times of day."""
    fields = ALIAS_FIELDS.get(expr, expr).split()
    return fields[1] != "*"


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick strictly after AFTER, as an aware datetime in UTC.

    Ticks are computed on the wall clock of TZ, so `0 9 * * *` stays at 09:00 local across
    daylight-saving changes. A tick in the hour the clocks skip runs when the clock resumes. When
    the clocks go back and an hour happens twice, a schedule with a fixed hour (`30 2 * * *`)
    runs in the first pass only, as cron does; one whose hour is `*` (`*/15 * * * *`,
    `@hourly`) keeps its rhythm through both passes.
    """
    expr = expr.strip()
    zone = ZoneInfo(tz)
    utc = ZoneInfo("UTC")
    moment = after
    for _ in range(62):  # a repeated hour holds at most 60 minute ticks
        local = moment.astimezone(zone)
        tick = croniter(expr, local).get_next(datetime).astimezone(utc)
        if tick.astimezone(zone).fold == 1 and _fixed_hour(expr):
            moment = tick  # the second pass of a repeated hour: already run in the first
            continue
        return tick
    return tick


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
