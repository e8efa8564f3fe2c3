"""Finding a space by public id or name, for management commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from .models import Space


def space_by_id_or_name(value: str, org_slug: str | None = None) -> Space:
    qs = Space.objects.select_related("organization")
    if org_slug:
        qs = qs.filter(organization__slug=org_slug)
    space = qs.filter(public_id=value).first()
    if space is not None:
        return space
    matches = list(qs.filter(name=value)[:2])
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"No space with id or name {value!r}")
    raise CommandError(f"Several spaces are named {value!r}: use the space id or --org")
