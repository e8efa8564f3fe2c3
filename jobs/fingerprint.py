"""Error fingerprints: which failures are "the same error", for the errors view.

A fingerprint is computed once, when an attempt fails (jobs/services.py), from the error's
first line with the parts that differ between occurrences of one error blanked: quoted strings,
UUIDs, ULIDs, hex ids and numbers. It is stored on the job beside `last_error`, so grouping the
failures of a space is an indexed GROUP BY (jobs/rollups.py `error_groups`), never a scan of
error texts. The key is a short digest; `error_template` is the blanked line itself, which the
errors view shows as the group's title.

docs/dashboard.md, "Errors", lists the rules with examples.
"""

from __future__ import annotations

import hashlib
import re

# The longest first line kept (a 1 MiB error on one line is the same error at 500 characters).
MAX_LINE = 500
FINGERPRINT_LENGTH = 16

# Order matters: quoted strings first (they may hold anything below), then the id shapes from
# the most specific to the least, and bare numbers last.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # 'anything' and "anything" (no newline inside; escaped quotes stay inside)
    (re.compile(r"'(?:[^'\\\n]|\\.)*'"), "'?'"),
    (re.compile(r'"(?:[^"\\\n]|\\.)*"'), '"?"'),
    # UUIDs, any case, with or without braces
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    # ULIDs: 26 Crockford base32 characters, starting 0-7; must hold a digit (not a long word)
    (
        re.compile(
            r"\b(?=[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]*\d)[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}\b"
        ),
        "<ulid>",
    ),
    # 0x-prefixed hex, and bare hex runs of 8+ characters holding a digit (hashes, object ids,
    # addresses); a plain word like "deadbeef" without a digit is left alone
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # numbers, with sign, decimals and exponent; also inside identifiers like "worker12"
    (re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<n>"),
)
_SPACES = re.compile(r"\s+")


def first_line(error: str) -> str:
    """The first line of ERROR that holds something, stripped and capped."""
    for line in (error or "").splitlines():
        line = line.strip()
        if line:
            return line[:MAX_LINE]
    return ""


def error_template(error: str) -> str:
    """ERROR's first line with the varying parts blanked; "" for an empty error."""
    line = first_line(error)
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return _SPACES.sub(" ", line).strip()


def fingerprint(error: str) -> str:
    """The group key of ERROR: a hex digest of its template ("" when there is no error)."""
    template = error_template(error)
    if not template:
        return ""
    return hashlib.sha256(template.encode()).hexdigest()[:FINGERPRINT_LENGTH]


FINGERPRINT_RE = re.compile(rf"^[0-9a-f]{{{FINGERPRINT_LENGTH}}}$")
