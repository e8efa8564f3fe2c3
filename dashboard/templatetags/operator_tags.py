"""The unattended-space warning (a space with pending jobs and no worker seen polling), for the
space page and the list of spaces; and durations in words for the operator's pages."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from jobs import queries, rollups

register = template.Library()


@register.simple_tag
def idle_warning(space, compact: bool = False) -> str:
    """A warning when SPACE has pending jobs and no worker was seen for rollups.IDLE_AFTER.

    One read of the space's latest sighting; the pending count is the space's stored counter."""
    counts = queries.stored_counts(space.status_counts, partial=True) or {}
    seen_at = rollups.last_seen([space.pk]).get(space.pk)
    idle = rollups.space_idle(space, counts.get("pending", 0), seen_at)
    if idle is None:
        return ""
    since = (
        format_html("last seen {}", duration(_age(idle.last_seen_at)))
        if idle.last_seen_at
        else "never seen"
    )
    text = format_html(
        "{} pending, no worker seen polling for {} minutes ({})",
        idle.pending,
        int(rollups.IDLE_AFTER.total_seconds() // 60),
        since,
    )
    if compact:
        return format_html(
            '<div class="flash flash-warning small idle-warning" data-idle-warning>⚠ {}</div>', text
        )
    return format_html(
        '<div class="flash flash-warning idle-warning" role="status" data-idle-warning>'
        "⚠ {}. Check that your workers are running and poll this space.</div>",
        text,
    )


def _age(at) -> float:
    from django.utils import timezone

    return max(0.0, (timezone.now() - at).total_seconds())


@register.filter
def duration(seconds) -> str:
    """Seconds in the largest fitting unit: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if seconds is None or seconds == "":
        return "—"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"


@register.filter
def ms_duration(ms) -> str:
    return "—" if ms is None else duration(float(ms) / 1000)


@register.filter
def percent(value) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"
