"""Verbs on spaces."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .models import Space

# Hooks other apps register to learn that a space resumed (the push sender wakes workers).
resume_hooks: list = []


def pause_space(space: Space) -> None:
    """Polls and claims return nothing while a space is paused; creation still works."""
    Space.objects.filter(pk=space.pk, paused_at__isnull=True).update(paused_at=timezone.now())
    space.refresh_from_db(fields=["paused_at"])


def resume_space(space: Space) -> None:
    updated = Space.objects.filter(pk=space.pk, paused_at__isnull=False).update(paused_at=None)
    space.refresh_from_db(fields=["paused_at"])
    if updated:
        for hook in resume_hooks:
            transaction.on_commit(lambda hook=hook: hook(space))
