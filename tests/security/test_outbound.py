"""Outbound HTTP against every spelling of an internal address, redirects and DNS that changes.

Extends tests/notifications/test_hostile_targets.py: there a fake resolver stands in for DNS;
here the numeric spellings go through the machine's real resolver (what production does), the
changing DNS answer is injected at socket.getaddrinfo itself, and every connection attempt the
client makes is recorded. A canary listens on every local address and must see nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from unittest import mock

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from notifications import http
from tests.notifications.canary import Canary

PUBLIC = "93.184.216.34"  # what the attacker's name answers at check time


@pytest.fixture
def canary():
    c = Canary()
    yield c
    c.close()


@pytest.fixture
def attempts():
    """Every socket.connect() the client makes. Connections to non-local addresses are refused
    on the spot (no network in tests); local ones go through, so the canary would see them."""
    seen: list[str] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        seen.append(str(address[0]))
        if address[0] in ("127.0.0.1", "::1") or str(address[0]).startswith("::ffff:127."):
            return real_connect(sock, address)
        raise ConnectionRefusedError(111, "Connection refused (test)")

    with mock.patch.object(socket.socket, "connect", connect):
        yield seen


def notations(port: int) -> list[str]:
    p = port
    hosts = [
        "127.0.0.1",
        "2130706433",  # decimal
        "017700000001",  # octal, one number
        "0177.0.0.1",  # octal dotted
        "0177.0.0.01",
        "0x7f000001",  # hex, one number
        "0x7f.0x0.0x0.0x1",  # hex dotted
        "0x7F.1",
        "127.1",  # short forms
        "127.0.1",
        "0",
        "0.0.0.0",  # noqa: S104
        "127.0.0.1.",  # trailing dot
        "localhost",
        "LOCALHOST.",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:ffff:127.0.0.1]",
        "[::127.0.0.1]",  # IPv4-compatible (deprecated)
        "[64:ff9b::7f00:1]",  # NAT64 well-known prefix
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b:1::7f00:1]",  # local-use NAT64
        "[2002:7f00:1::]",  # 6to4
        "[2002:7f00:0001::1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo (client 127.0.0.1)
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",  # NAT64 metadata
        "2852039166",  # 169.254.169.254 in decimal
    ]
    return [f"http://{h}:{p}/hook" for h in hosts]


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_no_notation_of_an_internal_address_gets_a_connection(canary, attempts):
    refused = {}
    for url in notations(canary.port):
        with pytest.raises(http.OutboundError) as caught:
            http.post(url, b"{}", connect_timeout=1, read_timeout=1, total_timeout=2)
        refused[url] = caught.value
    assert canary.hits == []
    assert attempts == [], "the client tried to connect to an internal address"
    for url, error in refused.items():
        # Refused for what it is, not merely because something failed to resolve.
        assert isinstance(error, http.InvalidTarget | http.BlockedTarget), (url, error)


def test_the_canary_and_the_recorder_do_see_an_allowed_connection(canary, attempts):
    """The control: with private targets allowed, the same URL does reach the canary."""
    with override_settings(OUTBOUND_ALLOW_PRIVATE=True), pytest.raises(http.OutboundError):
        http.post(f"http://2130706433:{canary.port}/", b"{}", total_timeout=2)
    assert attempts == ["127.0.0.1"]
    assert len(canary.hits) == 1


def create_with_callbacks(space, urls: list[str], capture=None) -> dict[str, object]:
    from tests.factories import issue_key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_key(space)}")
    outcome = {}
    for url in urls:
        response = client.post(
            f"/api/v1/spaces/{space.public_id}/jobs",
            {"name": "cb", "callbackUrl": url},
            format="json",
        )
        assert response.status_code in (201, 400), (url, response.content)
        outcome[url] = response
        if response.status_code == 201:
            # Killing the job sends its callback (Celery runs eagerly in tests).
            job_id = response.json()["id"]
            with capture(execute=True) if capture else contextlib.nullcontext():
                killed = client.post(f"/api/v1/jobs/{job_id}/kill", {}, format="json")
            assert killed.status_code == 200
    return outcome


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_job_callbacks_in_those_notations_never_reach_the_canary(
    db, canary, attempts, django_capture_on_commit_callbacks
):
    from notifications.models import NotificationDelivery
    from tests.factories import SpaceFactory

    outcome = create_with_callbacks(
        SpaceFactory(), notations(canary.port), django_capture_on_commit_callbacks
    )
    accepted = [url for url, response in outcome.items() if response.status_code == 201]
    assert canary.hits == []
    assert attempts == []
    # Every accepted callback was attempted and refused, none skipped silently.
    rows = NotificationDelivery.objects.filter(channel="callback")
    assert rows.count() == len(accepted)
    assert all(not row.success for row in rows)


CANONICAL = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]"]


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_job_callback_urls_to_literal_internal_addresses_are_refused_at_input(db, canary):
    from tests.factories import SpaceFactory

    urls = [f"http://{literal}:{canary.port}/hook" for literal in CANONICAL]
    outcome = create_with_callbacks(SpaceFactory(), urls)
    assert {url: r.status_code for url, r in outcome.items()} == dict.fromkeys(urls, 400)


def answers(*addresses: str):
    """A getaddrinfo that answers ADDRESSES in turn, one list per call (the last repeats)."""
    calls = itertools.chain(addresses, itertools.repeat(addresses[-1]))
    made: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        address = next(calls)
        made.append(address)
        out = []
        for a in address.split(","):
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    return getaddrinfo, made


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
@pytest.mark.parametrize("inward", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1"])
def test_a_dns_answer_that_turns_inward_after_the_check_is_never_connected_to(
    canary, attempts, inward
):
    getaddrinfo, made = answers(PUBLIC, inward)
    with mock.patch("socket.getaddrinfo", getaddrinfo), pytest.raises(http.OutboundError):
        http.post(f"http://rebind.example.test:{canary.port}/", b"{}", total_timeout=2)
    assert canary.hits == []
    # One resolution, and the connection went to the address that was checked.
    assert made == [PUBLIC]
    assert attempts == [PUBLIC]


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_a_dns_answer_that_is_inward_first_gets_no_connection_at_all(canary, attempts):
    getaddrinfo, _ = answers("127.0.0.1", PUBLIC)
    with mock.patch("socket.getaddrinfo", getaddrinfo), pytest.raises(http.BlockedTarget):
        http.post(f"http://rebind.example.test:{canary.port}/", b"{}", total_timeout=2)
    assert attempts == []
    assert canary.hits == []


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_a_mixed_answer_only_ever_connects_to_the_public_addresses(canary, attempts):
    getaddrinfo, _ = answers(f"127.0.0.1,{PUBLIC},::1,::ffff:127.0.0.1")
    with mock.patch("socket.getaddrinfo", getaddrinfo), pytest.raises(http.OutboundError):
        http.post(f"http://mixed.example.test:{canary.port}/", b"{}", total_timeout=2)
    assert attempts == [PUBLIC]
    assert canary.hits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/", "http://2130706433:{port}/"])
def test_redirects_to_loopback_are_never_followed(httpserver, canary, status, target):
    # Private targets allowed, so the receiver on 127.0.0.1 stands in for a public one.
    location = target.format(port=canary.port)
    httpserver.expect_request("/hook").respond_with_data(
        "", status=status, headers={"Location": location}
    )
    with override_settings(OUTBOUND_ALLOW_PRIVATE=True):
        response = http.post(httpserver.url_for("/hook"), b"{}", total_timeout=3)
    assert response.status == status
    assert not response.ok
    assert canary.hits == []
    assert len(httpserver.log) == 1
