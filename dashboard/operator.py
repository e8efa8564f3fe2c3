"""The operator's pages of a space: Workers, Overview (per job name) and Errors (failures
grouped by fingerprint, with retry and kill of a whole group).

Views format; the figures come from jobs/rollups.py, kept up to date by the scheduler, so a
page never counts the jobs table; group actions are the lifecycle's bulk retry and kill.
docs/dashboard.md explains each figure.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs import queries, rollups
from jobs.services import bulk_kill, bulk_retry

from .views import _get_space_for_user


def _idle(space, found_seen_at=None):
    pending = (queries.stored_counts(space.status_counts, partial=True) or {}).get("pending", 0)
    if found_seen_at is None:
        found_seen_at = rollups.last_seen([space.pk]).get(space.pk)
    return rollups.space_idle(space, pending, found_seen_at)


@login_required
@require_GET
def space_workers(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    found = rollups.workers(space)
    context = {
        "space": space,
        "org": space.organization,
        "tab": "workers",
        "workers": found,
        "idle_after_minutes": int(rollups.IDLE_AFTER.total_seconds() // 60),
        "shown_max": rollups.WORKERS_SHOWN,
    }
    return render(request, "dashboard/workers.html", context)


@login_required
@require_GET
def space_overview(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    context = {
        "space": space,
        "org": space.organization,
        "tab": "overview",
        "names": rollups.overview(space),
        "shown_max": rollups.OVERVIEW_NAMES,
    }
    return render(request, "dashboard/overview.html", context)


@login_required
@require_GET
def space_errors(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    context = {
        "space": space,
        "org": space.organization,
        "tab": "errors",
        "groups": rollups.error_groups(space),
        "shown_max": rollups.GROUPS_SHOWN,
    }
    return render(request, "dashboard/errors.html", context)


@login_required
@require_POST
def error_group_action(request: HttpRequest, public_id: str, fingerprint: str) -> HttpResponse:
    """Retry (dead and killed jobs) or kill (unfinished jobs) every job of one error group."""
    space = _get_space_for_user(request, public_id)
    if not rollups.valid_fingerprint(fingerprint):
        raise Http404("No such error group")
    action = request.POST.get("action")
    jobs = rollups.group_jobs(space, fingerprint)
    if action == "retry":
        done = bulk_retry(jobs)
        messages.success(request, f"Retried {done} job{'s' if done != 1 else ''}.")
    elif action == "kill":
        done = bulk_kill(jobs, reason=f"error group {fingerprint} killed by {request.user}")
        messages.success(request, f"Killed {done} job{'s' if done != 1 else ''}.")
    else:
        messages.error(request, "Choose retry or kill.")
    return redirect("dashboard-errors", public_id=space.public_id)
