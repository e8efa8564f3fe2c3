"""Template helpers: navigation, status badges, masking of secrets, errors and event data."""

from __future__ import annotations

import json

from django import template

from dashboard.jobview import ErrorView, error_view
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


@register.filter
def as_error(value) -> ErrorView:
    """A worker's error (a string or {type, message, traceback}) for _error.html."""
    return error_view(value)


@register.filter
def error_headline(value) -> str:
    """The first line of an error, for the jobs list."""
    return error_view(value).headline


@register.filter
def readable_data(value) -> str:
    """Event data as text to read, not JSON to parse: multi-line strings (tracebacks, log
    messages) keep their line breaks instead of showing as one line of escaped \\n and \\".

        error: |
          Traceback (most recent call last):
            ...
        attemptNumber: 2
    """
    return "\n".join(_readable_lines(value, 0))


def _readable_lines(value, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict) and value:
        lines = []
        for key, item in value.items():
            lines.extend(_readable_item(f"{pad}{key}:", item, depth))
        return lines
    if isinstance(value, list) and value:
        lines = []
        for item in value:
            lines.extend(_readable_item(f"{pad}-", item, depth))
        return lines
    return [pad + _scalar(value)]


def _readable_item(head: str, item, depth: int) -> list[str]:
    if isinstance(item, str) and "\n" in item:
        inner = "  " * (depth + 1)
        return [f"{head} |", *(inner + line for line in item.rstrip("\n").split("\n"))]
    if isinstance(item, dict | list) and item:
        return [head, *_readable_lines(item, depth + 1)]
    return [f"{head} {_scalar(item)}"]


def _scalar(value) -> str:
    if isinstance(value, str):
        # Plain text unless it would read as something else (empty, or padded).
        return value if value and value.strip() == value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)
