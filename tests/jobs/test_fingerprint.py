"""Error fingerprints: one group per error, whatever its ids, numbers and quoted values."""

from __future__ import annotations

import pytest

from jobs.fingerprint import FINGERPRINT_RE, error_template, fingerprint


@pytest.mark.parametrize(
    ("error", "template"),
    [
        ("Timeout after 30s", "Timeout after <n>s"),
        ("connection refused to 10.0.0.12:5432", "connection refused to <n>:<n>"),
        (
            "order 3f2b8c1e-9d4a-4e5b-8c7d-1a2b3c4d5e6f not found",
            "order <uuid> not found",
        ),
        ("job 01JDQ8Z4X6B2N3M4P5Q6R7S8T9 failed", "job <ulid> failed"),
        ("object at 0x7f3a2b1c4d5e is gone", "object at <hex> is gone"),
        ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
        ("KeyError: 'user_42'", "KeyError: '?'"),
        ('ValueError: bad value "x y z"', 'ValueError: bad value "?"'),
        ("balance -12.50 below 1e3", "balance <n> below <n>"),
        ("  \n\n  first real line  \nsecond line 123", "first real line"),
        ("deadbeef cafe", "deadbeef cafe"),  # words, not ids: left alone
    ],
)
def test_it_blanks_the_parts_that_vary(error, template):
    assert error_template(error) == template


def test_errors_differing_only_in_ids_share_a_fingerprint():
    a = fingerprint("HTTP 503 from https://api.example.com/v1/orders/123 (request 7f3a2b1c9d)")
    b = fingerprint("HTTP 503 from https://api.example.com/v1/orders/98765 (request 0a1b2c3d4e)")
    assert a == b
    assert FINGERPRINT_RE.match(a)


def test_different_errors_get_different_fingerprints():
    assert fingerprint("Timeout after 30s") != fingerprint("Connection reset")


def test_only_the_first_line_counts():
    assert fingerprint("Boom\nTraceback: line 1") == fingerprint("Boom\nTraceback: line 99")


def test_an_empty_error_has_no_fingerprint():
    assert fingerprint("") == ""
    assert fingerprint(" \n ") == ""
