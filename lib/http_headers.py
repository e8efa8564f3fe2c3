"""Validation of user-supplied HTTP headers (push headers, job callbackHeaders).

Plain helpers with no Django imports: the API (callbackHeaders), the dashboard and the
space_settings command validate input with them, and the notification client relies on
headers having passed them. Header values are treated as secrets: messages name the header,
never its value.
"""

from __future__ import annotations

import re

MAX_HEADERS = 20
MAX_NAME_LENGTH = 100
MAX_VALUE_LENGTH = 4096
MAX_TOTAL_BYTES = 8192

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII plus space and tab inside the value; no CR, LF, NUL or other controls.
_VALUE = re.compile(r"^[\t\x20-\x7e]*$")

# Framing and hop-by-hop headers (RFC 9110 section 7.6.1) that must come from the client
# itself, and the ones it sets on every request.
FORBIDDEN = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "upgrade",
        "expect",
        "content-encoding",
        "content-type",
        "user-agent",
    }
)
RESERVED_PREFIX = "x-jobyard-"


def validate_headers(headers: object) -> list[str]:
    """Problems with HEADERS (a mapping of name to string value); empty when acceptable."""
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return ["must be an object of header names to string values"]
    if len(headers) > MAX_HEADERS:
        return [f"at most {MAX_HEADERS} headers are allowed"]
    errors: list[str] = []
    total = 0
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not name:
            errors.append("header names must be non-empty strings")
            continue
        shown = name[:MAX_NAME_LENGTH] if _TOKEN.match(name) else "(invalid name)"
        if len(name) > MAX_NAME_LENGTH:
            errors.append(f"header name {shown!r} is longer than {MAX_NAME_LENGTH} characters")
            continue
        if not _TOKEN.match(name):
            errors.append(
                "header names may contain only letters, digits and !#$%&'*+-.^_`|~ "
                "(no spaces, colons, CR, LF or NUL)"
            )
            continue
        lower = name.lower()
        if lower in seen:
            errors.append(f"header {name!r} is given more than once")
            continue
        seen.add(lower)
        if lower in FORBIDDEN:
            errors.append(f"header {name!r} cannot be set: it is controlled by Jobyard")
            continue
        if lower.startswith(RESERVED_PREFIX):
            errors.append(f"header {name!r} cannot be set: X-Jobyard-* headers are reserved")
            continue
        if not isinstance(value, str):
            errors.append(f"header {name!r} must have a string value")
            continue
        if len(value) > MAX_VALUE_LENGTH:
            errors.append(f"header {name!r} value is longer than {MAX_VALUE_LENGTH} characters")
            continue
        if not _VALUE.match(value):
            errors.append(
                f"header {name!r} value may contain only printable ASCII "
                "(no CR, LF, NUL or other control characters)"
            )
            continue
        if value != value.strip(" \t"):
            errors.append(f"header {name!r} value must not start or end with whitespace")
            continue
        total += len(name) + len(value) + 4
    if not errors and total > MAX_TOTAL_BYTES:
        errors.append(f"headers must add up to at most {MAX_TOTAL_BYTES} bytes")
    return errors


def parse_header_line(line: str) -> tuple[str, str]:
    """`Name: value` (or `Name:value`) as a pair; ValueError without a colon.

    The pair still has to pass validate_headers().
    """
    name, sep, value = line.partition(":")
    if not sep:
        raise ValueError("a header must be given as Name:value")
    return name.strip(), value.strip(" \t")
