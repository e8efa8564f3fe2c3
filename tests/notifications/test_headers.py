from __future__ import annotations

import pytest

from lib.http_headers import parse_header_line, validate_headers
from notifications import services


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer abc"},
        {"X-Api-Key": "k", "X-Trace": ""},
        {"x-weird_but.valid~name": "v\twith tab"},
        {},
        None,
    ],
)
def test_it_accepts_ordinary_headers(headers):
    assert validate_headers(headers) == []


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"X-A": "v\r\nHost: evil"}, "no CR, LF, NUL"),
        ({"X-A": "v\nX-B: injected"}, "no CR, LF, NUL"),
        ({"X-A": "v\x00"}, "no CR, LF, NUL"),
        ({"X-A": "caf\u00e9"}, "printable ASCII"),
        ({"X-A\r\nHost": "v"}, "no spaces, colons"),
        ({"X A": "v"}, "no spaces, colons"),
        ({"X-A:": "v"}, "no spaces, colons"),
        ({"": "v"}, "non-empty"),
        ({"Host": "evil.example"}, "controlled by Jobyard"),
        ({"content-length": "0"}, "controlled by Jobyard"),
        ({"Transfer-Encoding": "chunked"}, "controlled by Jobyard"),
        ({"Connection": "close"}, "controlled by Jobyard"),
        ({"Upgrade": "websocket"}, "controlled by Jobyard"),
        ({"TE": "trailers"}, "controlled by Jobyard"),
        ({"Proxy-Authorization": "x"}, "controlled by Jobyard"),
        ({"User-Agent": "x"}, "controlled by Jobyard"),
        ({"X-Jobyard-Signature": "forged"}, "reserved"),
        ({"X-A": 1}, "string value"),
        ({"X-A": " padded"}, "whitespace"),
        ({"X-" + "a" * 200: "v"}, "longer than"),
        ({"X-A": "v" * 5000}, "longer than"),
        ({f"X-{i}": "v" for i in range(21)}, "at most 20"),
        ({f"X-{i}": "v" * 1000 for i in range(10)}, "8192 bytes"),
        (["X-A", "v"], "must be an object"),
    ],
)
def test_it_rejects_injection_and_overrides(headers, fragment):
    errors = validate_headers(headers)
    assert errors and any(fragment in e for e in errors), errors


def test_errors_never_echo_header_values():
    errors = validate_headers({"X-A": "s3cret\r\n", "Host": "s3cret"})
    assert errors and not any("s3cret" in e for e in errors)


def test_parse_header_line():
    assert parse_header_line("X-Token: abc:def") == ("X-Token", "abc:def")
    assert parse_header_line("X-Token:abc") == ("X-Token", "abc")
    with pytest.raises(ValueError, match="Name:value"):
        parse_header_line("no colon")


def test_push_settings_reject_header_injection(db):
    from tests.factories import SpaceFactory, stored_channels

    space = SpaceFactory()
    with pytest.raises(services.SettingsError) as caught:
        services.update_push(
            space, url="https://hooks.example.com/x", headers={"X-A": "v\r\nHost: evil"}
        )
    assert "push_headers" in caught.value.details
    channels = stored_channels(space)
    assert channels.push_url == "" and channels.push_headers == {}
