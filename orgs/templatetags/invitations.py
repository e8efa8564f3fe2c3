"""The signed-in user's open invitations, for the navigation (one query per page, cached)."""

from __future__ import annotations

from django import template

from orgs.models import Invitation

register = template.Library()


@register.simple_tag(takes_context=True)
def open_invitation_count(context) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    if not hasattr(request, "_open_invitation_count"):
        request._open_invitation_count = Invitation.objects.for_invitee(user).open().count()
    return request._open_invitation_count
