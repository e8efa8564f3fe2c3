"""Template helpers: navigation, status badges, masking of secrets."""

from __future__ import annotations

import json

from django import template

from lib.outbound import masked_url
from orgs.models import Organization

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_orgs(context) -> dict:
    """The user's organizations and the current one (the page's org, else the session's)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"orgs": [], "current": None}
    orgs = list(Organization.objects.for_user(user).order_by("name"))
    current = context.get("org")
    if current is None:
        slug = request.session.get("dashboard_org")
        current = next((o for o in orgs if o.slug == slug), orgs[0] if orgs else None)
    return {"orgs": orgs, "current": current}


@register.filter
def mask_url(url: str) -> str:
    """Scheme and host only: webhook and callback URLs carry secrets in their path."""
    return masked_url(url) if url else ""


@register.filter
def mask_secret(value: str, keep: int = 6) -> str:
    value = value or ""
    if len(value) <= keep:
        return "•" * len(value)
    return value[:keep] + "•" * 8


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def percent_width(value) -> str:
    """A CSS width for a 0-100 value."""
    try:
        number = max(0.0, min(100.0, float(value)))
    except (TypeError, ValueError):
        number = 0.0
    return f"{number:.1f}%"


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
