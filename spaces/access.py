"""Which spaces a person may see and manage: tenancy for people, decided here only.

The dashboard's pages and the streams' session sockets both ask this module. API keys carry
their own space and are checked in spaces/auth.py.
"""

from __future__ import annotations

from orgs.models import Membership

from .models import Space


def is_member(user_id: int, organization_id: int) -> bool:
    """Whether the user belongs to the organization (a re-check for open sockets)."""
    return Membership.objects.filter(user_id=user_id, organization_id=organization_id).exists()


def member_space(user, public_id: str) -> Space | None:
    """The space PUBLIC_ID when USER is a member of its organization, else None.

    The user's membership is attached as `space.membership` (and `space.organization.membership`)
    for role checks such as `membership.can_manage`."""
    if not user.is_authenticated:
        return None
    space = Space.objects.select_related("organization").filter(public_id=public_id).first()
    if space is None:
        return None
    membership = Membership.objects.filter(organization_id=space.organization_id, user=user).first()
    if membership is None:
        return None
    space.membership = membership
    space.organization.membership = membership
    return space
