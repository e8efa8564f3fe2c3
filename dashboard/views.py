"""Dashboard pages. Thin: tenancy checks, forms, then services.

Tenancy lives in two helpers, `_get_org_for_user` and `_get_space_for_user`: every page that
names an organization or a space goes through one of them, so an outsider gets 404 (no
existence leak) and a member asking for a manage-only action gets 403.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import flow, groups, queries, workflows
from jobs.models import Job, JobLog, NameLimit
from lib import errors
from lib.params import int_param
from notifications import services as notify
from notifications.models import EndpointBreaker, NotificationDelivery, SpaceChannels
from orgs.models import Invitation, InvitationError, Membership, Organization
from schedules import services as schedule_services
from schedules.models import Schedule
from spaces import access, scopes
from spaces import services as space_services
from spaces.models import ApiKey, Space

from . import forms, jobview, services
from . import schedules as dashboard_schedules

SESSION_ORG = "dashboard_org"
EVENTS_SHOWN = 300
# The job page lists this many failed attempts (the newest), each with its error.
ATTEMPTS_SHOWN = 50
LOGS_PAGE = 200


# --- Tenancy ---------------------------------------------------------------------------------


def _get_org_for_user(request: HttpRequest, slug: str, manage: bool = False) -> Organization:
    """The organization SLUG if the user is a member (else 404); 403 if MANAGE and not a manager.

    The membership is attached as `org.membership`.
    """
    membership = (
        Membership.objects.select_related("organization")
        .filter(organization__slug=slug, user=request.user)
        .first()
    )
    if membership is None:
        raise Http404("No such organization")
    if manage and not membership.can_manage:
        raise PermissionDenied("Only owners and admins can do this.")
    org = membership.organization
    org.membership = membership
    return org


def _get_space_for_user(request: HttpRequest, public_id: str, manage: bool = False) -> Space:
    """The space PUBLIC_ID if the user is a member of its organization (else 404); 403 if MANAGE
    and the user is not an owner or admin there. The membership is attached as `space.membership`.
    """
    space = access.member_space(request.user, public_id)
    if space is None:
        raise Http404("No such space")
    if manage and not space.membership.can_manage:
        raise PermissionDenied("Only owners and admins can do this.")
    return space


def _remember_org(request: HttpRequest, org: Organization) -> None:
    request.session[SESSION_ORG] = org.slug


def _current_org(request: HttpRequest) -> Organization | None:
    orgs = Organization.objects.for_user(request.user)
    slug = request.session.get(SESSION_ORG)
    org = orgs.filter(slug=slug).first() if slug else None
    return org or orgs.order_by("name").first()


# --- Accounts and organizations --------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard-home")
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome! Create an organization to get started.")
        return redirect("dashboard-org-create")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    org = _current_org(request)
    if org is None:
        if Invitation.objects.for_invitee(request.user).open().exists():
            return redirect("dashboard-invitations")
        return redirect("dashboard-org-create")
    return redirect("dashboard-org", slug=org.slug)


@login_required
@require_http_methods(["GET", "POST"])
def org_create(request: HttpRequest) -> HttpResponse:
    form = forms.OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            org = form.save()
            Membership.objects.create(
                organization=org, user=request.user, role=Membership.Role.OWNER
            )
        _remember_org(request, org)
        messages.success(request, f"Organization “{org.name}” created.")
        return redirect("dashboard-org", slug=org.slug)
    return render(request, "dashboard/org_create.html", {"form": form})


@login_required
@require_POST
def org_switch(request: HttpRequest, slug: str) -> HttpResponse:
    org = _get_org_for_user(request, slug)
    _remember_org(request, org)
    return redirect("dashboard-org", slug=org.slug)


@login_required
@require_http_methods(["GET", "POST"])
def org_spaces(request: HttpRequest, slug: str) -> HttpResponse:
    org = _get_org_for_user(request, slug)
    _remember_org(request, org)
    form = forms.SpaceForm(request.POST or None, organization=org)
    if request.method == "POST":
        if not org.membership.can_manage:
            raise PermissionDenied("Only owners and admins can create spaces.")
        if form.is_valid():
            try:
                space = Space.create(org, form.cleaned_data["name"])
            except IntegrityError:
                form.add_error("name", "This organization already has a space with this name.")
            else:
                messages.success(request, f"Space “{space.name}” created.")
                return redirect("dashboard-space", public_id=space.public_id)
    spaces = list(org.spaces.select_related("channels").order_by("name"))
    for space in spaces:
        space.channel_settings = SpaceChannels.find(space)
        space.counts = queries.space_counts(space)
    return render(
        request,
        "dashboard/org_spaces.html",
        {"org": org, "spaces": spaces, "form": form, "statuses": Job.Status.choices},
    )


@login_required
@require_http_methods(["GET", "POST"])
def org_members(request: HttpRequest, slug: str) -> HttpResponse:
    org = _get_org_for_user(request, slug)
    is_owner = org.membership.role == Membership.Role.OWNER
    form = forms.InviteForm(request.POST or None, organization=org, can_grant_owner=is_owner)
    if request.method == "POST":
        if not org.membership.can_manage:
            raise PermissionDenied("Only owners and admins can invite members.")
        if form.is_valid():
            # The same answer whether or not an account answers to this name or address.
            target, role = form.cleaned_data["invitee"], form.cleaned_data["role"]
            Invitation.objects.create(
                organization=org,
                invited_by=request.user,
                invitee=target["invitee"],
                email=target["email"],
                user=target["user"],
                role=role,
            )
            messages.success(
                request,
                f"Invitation sent to {target['invitee']} as {role}. They find it on their "
                f"Invitations page when they log in; it expires in {Invitation.VALID_FOR.days} days.",
            )
            return redirect("dashboard-members", slug=org.slug)
    memberships = org.memberships.select_related("user").order_by("user__username")
    invitations = []
    if org.membership.can_manage:
        invitations = org.invitations.open().select_related("invited_by").order_by("created_at")
    return render(
        request,
        "dashboard/org_members.html",
        {
            "org": org,
            "memberships": memberships,
            "invitations": invitations,
            "form": form,
            "roles": Membership.Role.choices,
            "is_owner": is_owner,
        },
    )


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    org = _get_org_for_user(request, slug, manage=True)
    invitation = get_object_or_404(org.invitations, pk=invitation_id)
    if invitation.role == Membership.Role.OWNER and org.membership.role != Membership.Role.OWNER:
        raise PermissionDenied("Only owners can take back an invitation as owner.")
    try:
        invitation.revoke()
    except InvitationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invitation for {invitation.invitee} revoked.")
    return redirect("dashboard-members", slug=org.slug)


def _get_invitation_for_user(request: HttpRequest, token: str) -> Invitation:
    """The invitation TOKEN if it is addressed to the user (else 404, whatever its state)."""
    invitation = (
        Invitation.objects.for_invitee(request.user)
        .select_related("organization")
        .filter(token=token)
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation")
    return invitation


@login_required
@require_GET
def invitations(request: HttpRequest) -> HttpResponse:
    pending = (
        Invitation.objects.for_invitee(request.user)
        .open()
        .select_related("organization", "invited_by")
        .order_by("created_at")
    )
    return render(request, "dashboard/invitations.html", {"invitations": pending})


@login_required
@require_POST
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = _get_invitation_for_user(request, token)
    try:
        membership = invitation.accept(request.user)
    except InvitationError as exc:
        messages.error(request, str(exc))
        return redirect("dashboard-invitations")
    org = invitation.organization
    _remember_org(request, org)
    messages.success(request, f"You joined {org.name} as {membership.get_role_display().lower()}.")
    return redirect("dashboard-org", slug=org.slug)


@login_required
@require_POST
def invitation_decline(request: HttpRequest, token: str) -> HttpResponse:
    invitation = _get_invitation_for_user(request, token)
    try:
        invitation.decline(request.user)
    except InvitationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invitation to {invitation.organization.name} declined.")
    return redirect("dashboard-invitations")


def _check_member_change(org: Organization, target: Membership, new_role: str | None) -> None:
    """Owners are changed only by owners, and an organization always keeps one owner."""
    actor = org.membership
    touches_owner = target.role == Membership.Role.OWNER or new_role == Membership.Role.OWNER
    if touches_owner and actor.role != Membership.Role.OWNER:
        raise PermissionDenied("Only owners can grant or change the owner role.")
    if target.role == Membership.Role.OWNER and new_role != Membership.Role.OWNER:
        owners = org.memberships.filter(role=Membership.Role.OWNER).count()
        if owners <= 1:
            raise PermissionDenied("An organization needs at least one owner.")


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    org = _get_org_for_user(request, slug, manage=True)
    target = get_object_or_404(org.memberships.select_related("user"), pk=membership_id)
    form = forms.RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a valid role.")
        return redirect("dashboard-members", slug=org.slug)
    role = form.cleaned_data["role"]
    with transaction.atomic():
        # Lock the org's memberships so two demotions can't both pass the last-owner check.
        list(org.memberships.select_for_update().order_by("pk"))
        target.refresh_from_db()
        _check_member_change(org, target, role)
        target.role = role
        target.save(update_fields=["role"])
    messages.success(request, f"{target.user.username} is now {role}.")
    return redirect("dashboard-members", slug=org.slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    org = _get_org_for_user(request, slug, manage=True)
    target = get_object_or_404(org.memberships.select_related("user"), pk=membership_id)
    with transaction.atomic():
        list(org.memberships.select_for_update().order_by("pk"))
        target.refresh_from_db()
        _check_member_change(org, target, None)
        target.delete()
    messages.success(request, f"{target.user.username} removed from {org.name}.")
    if target.user_id == request.user.id:
        request.session.pop(SESSION_ORG, None)
        return redirect("dashboard-home")
    return redirect("dashboard-members", slug=org.slug)


# --- Spaces ------------------------------------------------------------------------------------


@login_required
@require_POST
def space_pause(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    space_services.pause_space(space)
    messages.success(request, "Space paused: polls and claims return nothing until resumed.")
    return redirect(_next_url(request, space))


@login_required
@require_POST
def space_resume(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    space_services.resume_space(space)
    messages.success(request, "Space resumed.")
    return redirect(_next_url(request, space))


def _next_url(request: HttpRequest, space: Space) -> str:
    """A same-site return path from the form, or the space's jobs page."""
    nxt = request.POST.get("next", "")
    if nxt.startswith("/") and not nxt.startswith("//"):
        return nxt
    return reverse("dashboard-space", kwargs={"public_id": space.public_id})


@login_required
@require_http_methods(["GET", "POST"])
def space_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() == space.name:
            org_slug, name = space.organization.slug, space.name
            space.delete()
            messages.success(request, f"Space “{name}” and all its jobs deleted.")
            return redirect("dashboard-org", slug=org_slug)
        error = "Type the space's name exactly to confirm."
    return render(
        request,
        "dashboard/space_delete.html",
        {"space": space, "org": space.organization, "error": error},
    )


# --- Jobs --------------------------------------------------------------------------------------


# Groups listed on a space's Jobs page (newest first).
GROUPS_SHOWN = 10


@login_required
@require_GET
def space_jobs(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    flt = services.JobFilter.from_query(request.GET)
    if request.GET.get("fragment") == "rows" and "ids" in request.GET:
        # The live list: which of the jobs just created belong on this page, rendered.
        jobs = services.live_rows(space, flt, request.GET.get("ids", "")[:2000])
        rows = render_to_string(
            "dashboard/_job_rows.html", {"space": space, "jobs": jobs}, request=request
        )
        return JsonResponse({"rows": rows, "ids": [job.id for job in jobs]})
    # Cursors are job ids (26 characters); anything longer is junk, not a reason to fail.
    page = queries.job_page(
        space,
        **flt.criteria(),
        before=request.GET.get("before", "")[:26],
        after=request.GET.get("after", "")[:26],
        limit=services.PAGE_SIZE,
    )
    counts = queries.space_counts(space)
    is_first_page = not request.GET.get("before") and not request.GET.get("after")
    if request.GET.get("fragment") == "rows":
        # The live page's resync and polling fallback: the rows of this same page.
        rows = render_to_string(
            "dashboard/_job_rows.html", {"space": space, "jobs": page.jobs}, request=request
        )
        return JsonResponse({"rows": rows, "counts": counts})
    context = {
        "space": space,
        "org": space.organization,
        "flt": flt,
        "page": page,
        "counts": counts,
        "statuses": Job.Status.choices,
        "filter_query": urlencode(flt.as_params()),
        "live": is_first_page,
        "stream_url": f"/api/v1/realtime/spaces/{space.public_id}",
        # The newest groups with a completion step, on the first page only (a small card).
        "groups": groups.recent_groups(space, GROUPS_SHOWN) if is_first_page else [],
    }
    return render(request, "dashboard/space_jobs.html", context)


@login_required
@require_GET
def space_chart(request: HttpRequest, public_id: str) -> JsonResponse:
    space = _get_space_for_user(request, public_id)
    return JsonResponse(services.cached_throughput(space))


@login_required
@require_GET
def space_counts(request: HttpRequest, public_id: str) -> JsonResponse:
    space = _get_space_for_user(request, public_id)
    return JsonResponse({"counts": queries.space_counts(space)})


BULK_COUNT_CAP = 100_000
BULK_ELIGIBLE = {"kill": Job.ACTIVE, "retry": (Job.Status.DEAD, Job.Status.KILLED)}


@login_required
@require_POST
def jobs_bulk(request: HttpRequest, public_id: str) -> HttpResponse:
    """Bulk kill or retry: first a confirmation page with the count, then the action."""
    space = _get_space_for_user(request, public_id)
    form = forms.BulkForm(request.POST)
    flt = services.JobFilter.from_query(request.POST)
    back = reverse("dashboard-space", kwargs={"public_id": space.public_id})
    if flt.as_params():
        back += "?" + urlencode(flt.as_params())
    if not form.is_valid():
        messages.error(request, "Choose an action and the jobs to apply it to.")
        return redirect(back)
    action, scope = form.cleaned_data["action"], form.cleaned_data["scope"]
    if scope == "selected":
        ids = form.cleaned_data["ids"]
        if not ids:
            messages.error(request, "Select some jobs first.")
            return redirect(back)
        qs = Job.objects.filter(space=space, id__in=ids)
    else:
        qs = queries.jobs_matching(space, **flt.criteria())
    qs = qs.filter(status__in=BULK_ELIGIBLE[action])

    if request.POST.get("confirm") != "yes":
        # Capped, so the confirmation of "everything matching" stays cheap on a huge space.
        count = Job.objects.filter(pk__in=qs.values("pk")[: BULK_COUNT_CAP + 1]).count()
        return render(
            request,
            "dashboard/jobs_bulk_confirm.html",
            {
                "space": space,
                "org": space.organization,
                "action": action,
                "scope": scope,
                "count": min(count, BULK_COUNT_CAP),
                "count_capped": count > BULK_COUNT_CAP,
                "ids": form.cleaned_data["ids"],
                "flt": flt,
                "back": back,
            },
        )

    from jobs.services import bulk_kill, bulk_retry

    if action == "kill":
        reason = form.cleaned_data["reason"] or f"killed from the dashboard by {request.user}"
        done = bulk_kill(qs, reason=reason)
        messages.success(request, f"Killed {done} job{'s' if done != 1 else ''}.")
    else:
        done = bulk_retry(qs)
        messages.success(request, f"Retried {done} job{'s' if done != 1 else ''}.")
    return redirect(back)


def _get_job(space: Space, job_id: str) -> Job:
    return get_object_or_404(Job, space=space, id=job_id)


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@login_required
@require_GET
def job_detail(request: HttpRequest, public_id: str, job_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    job = _get_job(space, job_id)
    # The newest events, shown oldest first; a job with thousands of progress events shows
    # its latest EVENTS_SHOWN.
    events, truncated = queries.latest_events(job, EVENTS_SHOWN)
    progress = job.progress or {}
    stages = []
    sub = progress.get("subProgress") if isinstance(progress, dict) else None
    if isinstance(sub, dict):
        for stage, info in sub.items():
            info = info if isinstance(info, dict) else {}
            stages.append(
                {
                    "name": stage,
                    "percent": _clamp(info.get("percent")),
                    "message": info.get("message") or "",
                }
            )
    from jobs.services import DEFAULT_BACKOFF

    parents, children, graph = [], [], None
    if job.parent_count or job.has_children:
        # A job of a workflow (docs/workflows.md): its neighbours and the whole graph.
        parents, children = workflows.relatives(job)
        graph = jobview.workflow_layout(workflows.workflow_graph(job), job.pk)
    # A member of a group with a completion step (docs/workflows.md): the group's progress.
    group = groups.get_group(space, job.group_id) if job.group_id else None
    context = {
        "space": space,
        "org": space.organization,
        "job": job,
        "events": events,
        "timeline": jobview.timeline(events),
        "events_truncated": truncated,
        "failed_attempts": jobview.failed_attempts(queries.failure_events(job, ATTEMPTS_SHOWN)),
        "attempts_total": job.max_retries + 1,
        "last_error": jobview.error_view(job.last_error),
        "backoff_words": jobview.describe_backoff(job.backoff, DEFAULT_BACKOFF),
        "payload": _pretty(job.payload),
        "result": _pretty(job.result) if job.result is not None else "",
        "callback_headers": sorted((job.callback_headers or {}).keys()),
        "percent": _clamp(progress.get("percent")) if isinstance(progress, dict) else None,
        "progress_message": progress.get("message", "") if isinstance(progress, dict) else "",
        "stages": stages,
        "log_levels": JobLog.Level.choices,
        "can_kill": job.status in Job.ACTIVE,
        "can_retry": job.status in (Job.Status.DEAD, Job.Status.KILLED),
        "stream_url": f"/api/v1/realtime/{job.id}",
        "parents": parents,
        "children": children,
        "graph": graph,
        "group": group,
        "group_percent": 100 * group.done / group.total if group and group.total else 0,
    }
    template = "dashboard/_job_live.html" if request.GET.get("fragment") else "dashboard/job.html"
    return render(request, template, context)


def _clamp(value) -> float | None:
    try:
        return max(0.0, min(100.0, float(value)))
    except (TypeError, ValueError):
        return None


@login_required
@require_POST
def job_kill(request: HttpRequest, public_id: str, job_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    job = _get_job(space, job_id)
    from jobs.services import kill_job

    reason = (
        request.POST.get("reason", "").strip()[:500]
        or f"killed from the dashboard by {request.user}"
    )
    try:
        kill_job(job, reason=reason)
    except errors.DomainError as exc:
        messages.error(request, f"Could not kill the job: {exc.message}")
    else:
        messages.success(request, "Job killed.")
    return redirect("dashboard-job", public_id=space.public_id, job_id=job.id)


@login_required
@require_POST
def job_retry(request: HttpRequest, public_id: str, job_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id)
    job = _get_job(space, job_id)
    from jobs.services import retry_job

    try:
        retry_job(job)
    except errors.DomainError as exc:
        messages.error(request, f"Could not retry the job: {exc.message}")
    else:
        messages.success(request, "Job queued again.")
    return redirect("dashboard-job", public_id=space.public_id, job_id=job.id)


@login_required
@require_GET
def job_logs(request: HttpRequest, public_id: str, job_id: str) -> JsonResponse:
    """Log lines by seq: `after` for the live tail (oldest first), else the newest lines
    below `before` (for "load older"); `level` and `q` filter."""
    space = _get_space_for_user(request, public_id)
    job = _get_job(space, job_id)
    level = request.GET.get("level", "")
    # Junk cursors are ignored and a negative one reads as 0; `after` wins over `before`.
    after = int_param(request.GET, "after", clamp=True)
    before = int_param(request.GET, "before", clamp=True) if after is None else None
    rows, more = queries.log_page(
        job,
        limit=LOGS_PAGE,
        after=after,
        before=before,
        levels=[level] if level in JobLog.Level.values else None,
        text=request.GET.get("q", "").strip()[:200],
    )
    return JsonResponse(
        {
            "lines": [
                {
                    "seq": r.seq,
                    "level": r.level,
                    "message": r.message,
                    "timestamp": r.timestamp.isoformat(),
                    "attributes": r.attributes,
                    "attemptNumber": r.attempt_number,
                }
                for r in rows
            ],
            "more": more,
        }
    )


# --- Tokens ------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def space_tokens(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    form = forms.TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        row, clear = ApiKey.issue(
            space,
            form.cleaned_data["name"],
            form.cleaned_data["scope_list"],
            created_by=request.user,
        )
        new_key = {"row": row, "clear": clear}
        form = forms.TokenForm()
    keys = space.api_keys.filter(is_public=False).select_related("created_by")
    response = render(
        request,
        "dashboard/space_tokens.html",
        {
            "space": space,
            "org": space.organization,
            "form": form,
            "keys": keys,
            "new_key": new_key,
            "worker_preset": scopes.WORKER_PRESET,
            "public_key": space.public_progress_key,
        },
    )
    # The clear key is in this response once: keep it out of every cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, public_id: str, key_id: int) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    key = get_object_or_404(ApiKey, space=space, pk=key_id, is_public=False)
    key.revoke()
    messages.success(request, f"Token “{key.name}” revoked: it stops working at once.")
    return redirect("dashboard-tokens", public_id=space.public_id)


# --- Settings ------------------------------------------------------------------------------


def _settings_forms(space: Space, channels: SpaceChannels, data=None, which: str = "") -> dict:
    def bound(name):
        return data if which == name else None

    return {
        "general_form": forms.GeneralSettingsForm(
            bound("general"),
            organization=space.organization,
            instance=space,
            initial={
                "name": space.name,
                "retention_completed_days": space.retention_completed_days,
                "retention_failed_days": space.retention_failed_days,
            },
        ),
        "slack_form": forms.SlackForm(
            bound("slack"),
            initial={
                "slack_webhook_url": channels.slack_webhook_url,
                "slack_events": channels.slack_events,
            },
        ),
        "push_form": forms.PushForm(
            bound("push"),
            initial={
                "push_url": channels.push_url,
                "push_headers": forms.headers_as_text(channels.push_headers),
                "push_names": ", ".join(channels.push_names or []),
            },
        ),
    }


@login_required
@require_http_methods(["GET", "POST"])
def space_settings(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    which = request.POST.get("form", "") if request.method == "POST" else ""
    # Made here if the space has none yet: the page shows the signing secret.
    channels = SpaceChannels.of(space)
    context_forms = _settings_forms(space, channels, request.POST, which)
    if which:
        form = context_forms.get(f"{which}_form")
        if form is None:
            messages.error(request, "Unknown settings form.")
            return redirect("dashboard-settings", public_id=space.public_id)
        if form.is_valid():
            try:
                _save_settings(space, which, form.cleaned_data)
            except notify.SettingsError as exc:
                # The notification rules (address policy, header rules) live in one place.
                for field, problems in exc.details.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                messages.success(request, f"{_FORM_TITLES[which]} settings saved.")
                anchor = f"#{which}"
                return redirect(reverse("dashboard-settings", args=[space.public_id]) + anchor)
    deliveries = NotificationDelivery.objects.filter(space=space).select_related("job")[:25]
    # Endpoints that stopped answering: their notifications wait (notifications/breaker.py).
    paused_endpoints = EndpointBreaker.objects.filter(
        space=space, open_until__gt=timezone.now()
    ).order_by("endpoint")
    return render(
        request,
        "dashboard/space_settings.html",
        {
            "space": space,
            "channels": channels,
            "org": space.organization,
            "deliveries": deliveries,
            "paused_endpoints": paused_endpoints,
            **context_forms,
        },
    )


_FORM_TITLES = {"general": "General", "slack": "Slack", "push": "HTTP push"}


def _save_settings(space: Space, which: str, data: dict) -> None:
    if which == "general":
        space.name = data["name"]
        space.retention_completed_days = data["retention_completed_days"]
        space.retention_failed_days = data["retention_failed_days"]
        space.save(update_fields=["name", "retention_completed_days", "retention_failed_days"])
    elif which == "slack":
        # Saving clears slack_disabled_at and slack_last_error: a channel disabled after a
        # permanent failure is turned back on by saving it again.
        notify.update_slack(space, url=data["slack_webhook_url"], events=data["slack_events"])
    elif which == "push":
        notify.update_push(
            space, url=data["push_url"], headers=data["push_headers"], names=data["push_names"]
        )


@login_required
@require_POST
def settings_rotate_secret(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    notify.rotate_push_secret(space)
    messages.success(
        request, "New signing secret: update your receivers, the old one no longer verifies."
    )
    return redirect(reverse("dashboard-settings", args=[space.public_id]) + "#push")


def _send_test(request: HttpRequest, public_id: str, kind: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    channels = SpaceChannels.find(space)
    if channels is None:
        url = ""
    else:
        url = channels.slack_webhook_url if kind == "slack" else channels.push_url
    label = "Slack test message" if kind == "slack" else "Test push"
    anchor = reverse("dashboard-settings", args=[space.public_id]) + f"#{kind}"
    if not url:
        messages.error(request, f"Save a URL before sending a {label.lower()}.")
        return redirect(anchor)
    sender = notify.send_test_slack if kind == "slack" else notify.send_test_push
    try:
        outcome = sender(space)
    except errors.DomainError as exc:
        messages.error(request, f"{label} not sent: {exc.message}")
        return redirect(anchor)
    if outcome.success:
        messages.success(request, f"{label} sent (HTTP {outcome.status_code}).")
    else:
        reason = outcome.error or f"HTTP {outcome.status_code}"
        messages.error(request, f"{label} failed: {reason}")
    return redirect(anchor)


@login_required
@require_POST
def settings_test_slack(request: HttpRequest, public_id: str) -> HttpResponse:
    return _send_test(request, public_id, "slack")


@login_required
@require_POST
def settings_test_push(request: HttpRequest, public_id: str) -> HttpResponse:
    return _send_test(request, public_id, "push")


# --- Recurring schedules -----------------------------------------------------------------------
# Members see schedules and limits; changing them takes an owner or admin, as for settings.


def _get_schedule(space: Space, name: str) -> Schedule:
    return get_object_or_404(Schedule, space=space, name=name)


def _schedule_url(space: Space, schedule: Schedule | None = None) -> str:
    if schedule is None:
        return reverse("dashboard-schedules", kwargs={"public_id": space.public_id})
    return reverse(
        "dashboard-schedule", kwargs={"public_id": space.public_id, "name": schedule.name}
    )


def _save_schedule_form(
    request: HttpRequest, space: Space, form: forms.ScheduleForm, schedule: Schedule | None
) -> Schedule | None:
    """The saved schedule, or None with the problems added to FORM."""
    if not form.is_valid():
        return None
    try:
        return dashboard_schedules.save_schedule(space, form.cleaned_data["values"], schedule)
    except dashboard_schedules.FormError as exc:
        form.add_error(exc.field, exc.message)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def space_schedules(request: HttpRequest, public_id: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=request.method == "POST")
    form = forms.ScheduleForm(request.POST or None, space=space)
    if request.method == "POST":
        schedule = _save_schedule_form(request, space, form, None)
        if schedule is not None:
            messages.success(request, f"Schedule “{schedule.name}” created.")
            return redirect(_schedule_url(space, schedule))
    schedules = list(Schedule.objects.filter(space=space).order_by("name"))
    jobs = dashboard_schedules.last_jobs(space, schedules)
    for schedule in schedules:
        schedule.last_job = jobs.get(schedule.last_job_id)
    return render(
        request,
        "dashboard/space_schedules.html",
        {
            "space": space,
            "org": space.organization,
            "schedules": schedules,
            "form": form,
            "form_open": request.method == "POST",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def schedule_detail(request: HttpRequest, public_id: str, name: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=request.method == "POST")
    schedule = _get_schedule(space, name)
    if request.method == "POST":
        form = forms.ScheduleForm(request.POST, space=space, instance=schedule)
        saved = _save_schedule_form(request, space, form, schedule)
        if saved is not None:
            messages.success(request, f"Schedule “{saved.name}” saved.")
            return redirect(_schedule_url(space, saved))
        # Show the stored schedule beside the rejected form, not the half-applied one.
        schedule = _get_schedule(space, name)
    else:
        form = forms.ScheduleForm(
            space=space, instance=schedule, initial=forms.ScheduleForm.initial_for(schedule)
        )
    last_job = dashboard_schedules.last_jobs(space, [schedule]).get(schedule.last_job_id)
    return render(
        request,
        "dashboard/schedule.html",
        {
            "space": space,
            "org": space.organization,
            "schedule": schedule,
            "form": form,
            "upcoming": dashboard_schedules.upcoming(schedule),
            "last_job": last_job,
            "template_json": _pretty(schedule.job_template),
        },
    )


@login_required
@require_POST
def schedule_pause(request: HttpRequest, public_id: str, name: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    schedule = _get_schedule(space, name)
    schedule_services.pause(schedule)
    messages.success(request, f"Schedule “{schedule.name}” paused: it fires nothing until resumed.")
    return redirect(_next_url_or(request, _schedule_url(space, schedule)))


@login_required
@require_POST
def schedule_resume(request: HttpRequest, public_id: str, name: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    schedule = _get_schedule(space, name)
    schedule_services.resume(schedule)
    messages.success(
        request, f"Schedule “{schedule.name}” resumed: ticks missed while paused are skipped."
    )
    return redirect(_next_url_or(request, _schedule_url(space, schedule)))


@login_required
@require_POST
def schedule_trigger(request: HttpRequest, public_id: str, name: str) -> HttpResponse:
    space = _get_space_for_user(request, public_id, manage=True)
    schedule = _get_schedule(space, name)
    try:
        job = schedule_services.trigger_now(schedule)
    except errors.DomainError as exc:
        # A template that no longer validates, or a job the space refuses.
        detail = _flat_detail(exc.details) if exc.details else exc.message
        messages.error(request, f"Could not run “{schedule.name}”: {detail}")
        return redirect(_next_url_or(request, _schedule_url(space, schedule)))
    messages.success(request, f"Schedule “{schedule.name}” triggered: job {job.id} created.")
    return redirect("dashboard-job", public_id=space.public_id, job_id=job.id)


@login_required
@require_POST
def schedule_delete(request: HttpRequest, public_id: str, name: str) -> HttpResponse:
    """POST without confirm=yes shows the confirmation page; with it, deletes."""
    space = _get_space_for_user(request, public_id, manage=True)
    schedule = _get_schedule(space, name)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "dashboard/schedule_delete.html",
            {"space": space, "org": space.organization, "schedule": schedule},
        )
    schedule.delete()
    messages.success(request, f"Schedule “{schedule.name}” deleted. Jobs it created stay.")
    return redirect(_schedule_url(space))


def _next_url_or(request: HttpRequest, default: str) -> str:
    nxt = request.POST.get("next", "")
    if nxt.startswith("/") and not nxt.startswith("//"):
        return nxt
    return default


def _flat_detail(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flat_detail(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flat_detail(d) for d in detail)
    return str(detail)


# --- Flow-control limits -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def space_limits(request: HttpRequest, public_id: str) -> HttpResponse:
    """List the limits; POST op=set creates or changes one, op=remove deletes one."""
    space = _get_space_for_user(request, public_id, manage=request.method == "POST")
    form = forms.LimitForm()
    if request.method == "POST":
        op = request.POST.get("op", "set")
        if op == "remove":
            name = request.POST.get("name", "").strip()[:200]
            flow.set_limit(space, name, concurrency=None, rate=None)
            messages.success(request, f"Limit on “{name}” removed.")
            return redirect("dashboard-limits", public_id=space.public_id)
        form = forms.LimitForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                dashboard_schedules.set_limit(
                    space, data["name"], **{f: data[f] for f in forms.LimitForm.LIMITS}
                )
            except dashboard_schedules.FormError as exc:
                form.add_error(exc.field, exc.message)
            else:
                messages.success(request, f"Limit on “{data['name']}” saved.")
                return redirect("dashboard-limits", public_id=space.public_id)
    else:
        # ?edit=<name> fills the form with that limit, to change it.
        editing = NameLimit.objects.filter(
            space=space, name=request.GET.get("edit", "")[:200]
        ).first()
        if editing is not None:
            form = forms.LimitForm(
                initial={"name": editing.name}
                | {f: getattr(editing, f) for f in forms.LimitForm.LIMITS}
            )
    return render(
        request,
        "dashboard/space_limits.html",
        {
            "space": space,
            "org": space.organization,
            "rows": dashboard_schedules.limit_rows(space),
            "form": form,
        },
    )
