"""No notification ever reaches an internal address, whatever the URL or DNS answer says.

Private addresses are refused here (OUTBOUND_ALLOW_PRIVATE=False, unlike the rest of the
suite), and a canary listens on every local address of this machine: it must see nothing.
"""

from __future__ import annotations

import socket
from unittest import mock

import pytest
from django.test import override_settings

from lib.outbound import blocked_reason, validate_outbound_url
from notifications import http, services
from notifications.models import NotificationDelivery

from .canary import Canary

# A fake DNS: names an attacker controls, resolving to internal addresses.
DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "internal.example.test": ["127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "mapped.example.test": ["::ffff:127.0.0.1"],
    "mixed.example.test": ["10.0.0.5", "127.0.0.1", "::1"],
    "nat64.example.test": ["64:ff9b::7f00:1"],
    "sixtofour.example.test": ["2002:7f00:1::1"],
    "compat.example.test": ["::7f00:1"],
    "localtest.me": ["127.0.0.1"],
    "zero.example.test": ["0.0.0.0"],  # noqa: S104
    "cgnat.example.test": ["100.64.10.10"],
    "ula.example.test": ["fd00::2"],
    "self.example.test": ["192.0.2.2"],
    "linklocal6.example.test": ["fe80::1"],
    "v6-only-loopback.example.test": ["::1"],
}


def fake_resolve(host: str, port: int):
    if host in DNS:
        answers = DNS[host]
    else:
        # Numeric forms (127.1, 2130706433, 0x7f000001 ...) as the system would read them;
        # anything else is an unknown name (no network in tests).
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        answers = [info[4][0] for info in infos]
    out = []
    for address in answers:
        if ":" in address:
            out.append((socket.AF_INET6, (address, port, 0, 0)))
        else:
            out.append((socket.AF_INET, (address, port)))
    return out


@pytest.fixture
def canary():
    c = Canary()
    yield c
    c.close()


def corpus(port: int) -> list[str]:
    p = port
    return [
        # loopback in every spelling
        f"http://127.0.0.1:{p}/",
        f"http://127.0.0.2:{p}/",
        f"http://127.1:{p}/",
        f"http://2130706433:{p}/",
        f"http://0x7f000001:{p}/",
        f"http://0177.0.0.1:{p}/",
        f"http://0x7f.0.0.1:{p}/",
        f"http://0:{p}/",
        f"http://0.0.0.0:{p}/",
        f"http://[::1]:{p}/",
        f"http://[::]:{p}/",
        f"http://[0:0:0:0:0:0:0:1]:{p}/",
        # IPv6 forms wrapping 127.0.0.1
        f"http://[::ffff:127.0.0.1]:{p}/",
        f"http://[::ffff:7f00:1]:{p}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
        f"http://[::127.0.0.1]:{p}/",
        f"http://[64:ff9b::127.0.0.1]:{p}/",
        f"http://[2002:7f00:1::]:{p}/",
        # names meaning loopback
        f"http://localhost:{p}/",
        f"http://LOCALHOST.:{p}/",
        f"http://api.localhost:{p}/",
        # private, CGNAT, link-local, metadata, multicast, reserved, this machine
        f"http://10.0.0.1:{p}/",
        f"http://172.16.0.1:{p}/",
        f"http://192.168.1.1:{p}/",
        f"http://100.64.0.1:{p}/",
        f"http://169.254.169.254:{p}/latest/meta-data/",
        f"http://[fd00:ec2::254]:{p}/",
        f"http://[fe80::1]:{p}/",
        f"http://[fc00::1]:{p}/",
        f"http://[fd00::2]:{p}/",
        f"http://192.0.2.2:{p}/",
        f"http://224.0.0.1:{p}/",
        f"http://255.255.255.255:{p}/",
        f"http://[ff02::1]:{p}/",
        f"http://198.18.0.1:{p}/",
        f"http://192.0.0.192:{p}/",
        f"http://100.100.100.200:{p}/",
        f"http://168.63.129.16:{p}/",
        # schemes and URL tricks
        f"ftp://127.0.0.1:{p}/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{p}/_",
        f"http://user:pass@127.0.0.1:{p}/",
        f"http://example.com@127.0.0.1:{p}/",
        f"http://127.0.0.1:{p}\r\nHost: evil/",
        f"http:///127.0.0.1:{p}/",
        # names an attacker points at internal addresses
        f"http://internal.example.test:{p}/",
        f"http://metadata.google.internal:{p}/computeMetadata/v1/",
        f"http://mapped.example.test:{p}/",
        f"http://mixed.example.test:{p}/",
        f"http://nat64.example.test:{p}/",
        f"http://sixtofour.example.test:{p}/",
        f"http://compat.example.test:{p}/",
        f"http://localtest.me:{p}/",
        f"http://zero.example.test:{p}/",
        f"http://cgnat.example.test:{p}/",
        f"http://ula.example.test:{p}/",
        f"http://self.example.test:{p}/",
        f"http://linklocal6.example.test:{p}/",
        f"http://v6-only-loopback.example.test:{p}/",
        f"https://internal.example.test:{p}/",
    ]


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_no_hostile_target_reaches_a_local_listener(canary):
    targets = corpus(canary.port)
    assert len(targets) >= 40

    outcomes = {}
    with mock.patch("notifications.http.resolve", side_effect=fake_resolve):
        for url in targets:
            with pytest.raises(http.OutboundError) as caught:
                http.post(url, b"{}", connect_timeout=1, read_timeout=1, total_timeout=2)
            outcomes[url] = caught.value

    assert canary.hits == []
    for url, error in outcomes.items():
        assert isinstance(error, http.InvalidTarget | http.BlockedTarget), (url, error)
        assert error.permanent
        assert "127.0.0.1" not in error.message and "example.test" not in error.message


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_the_canary_does_catch_an_allowed_connection(canary):
    """The corpus test is only meaningful if the canary sees what does get through."""
    with override_settings(OUTBOUND_ALLOW_PRIVATE=True), pytest.raises(http.OutboundError):
        http.post(f"http://127.0.0.1:{canary.port}/", b"{}", total_timeout=2)
    assert len(canary.hits) == 1


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_hostile_push_and_slack_urls_are_rejected_at_input(db, canary):
    from tests.factories import SpaceFactory

    space = SpaceFactory()
    for url in [f"http://127.0.0.1:{canary.port}/", "http://[::ffff:10.0.0.1]/", "ftp://x/"]:
        with pytest.raises(services.SettingsError):
            services.update_push(space, url=url)
        with pytest.raises(services.SettingsError):
            services.update_slack(space, url=url)
    assert canary.hits == []


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_a_name_resolving_inward_fails_delivery_without_connecting(db, canary, engine):
    from tests.factories import SpaceFactory

    space = SpaceFactory(
        push_url=f"http://internal.example.test:{canary.port}/wake",
        slack_webhook_url=f"http://mixed.example.test:{canary.port}/hook",
        slack_events=["created"],
    )
    with mock.patch("notifications.http.resolve", side_effect=fake_resolve):
        job = engine.create(space)
        engine.kill(job)  # no callback URL: nothing
        cb = engine.create(space, callback_url=f"http://localtest.me:{canary.port}/cb")
        engine.kill(cb)

    assert canary.hits == []
    rows = NotificationDelivery.objects.order_by("id")
    assert {r.channel for r in rows} == {"slack", "push", "callback"}
    assert all(not r.success and "refused" in r.error for r in rows)
    # refusals are permanent: one attempt each, no retries
    assert sorted(r.attempt for r in rows) == [1] * len(rows)


def test_it_checks_and_connects_to_the_same_answer(httpserver):
    """One resolution, done by the client: the socket connects to the address that passed
    the check, so a DNS answer that changes afterwards has no say. Host and path are kept."""
    httpserver.expect_request("/hook").respond_with_data("ok")
    answers = iter([[(socket.AF_INET, ("127.0.0.1", httpserver.port))]])

    with (
        mock.patch("notifications.http.resolve", side_effect=lambda h, p: next(answers)),
        mock.patch("socket.getaddrinfo", side_effect=AssertionError("second resolution")),
    ):
        response = http.post(f"http://hooks.example.test:{httpserver.port}/hook", b"{}")

    assert response.status == 200 and response.address == "127.0.0.1"
    (request, _) = httpserver.log[0]
    assert request.headers["Host"] == f"hooks.example.test:{httpserver.port}"


@override_settings(OUTBOUND_ALLOW_PRIVATE=False)
def test_a_rebinding_name_is_refused_on_the_connect_time_answer(canary):
    # The first answer (say, at input validation) was public; the one used to connect is not.
    answers = iter(
        [
            [(socket.AF_INET, ("127.0.0.1", canary.port))],
        ]
    )
    assert validate_outbound_url("http://rebind.example.test/", allow_private=False) == []
    with (
        mock.patch("notifications.http.resolve", side_effect=lambda h, p: next(answers)),
        pytest.raises(http.BlockedTarget),
    ):
        http.post(f"http://rebind.example.test:{canary.port}/", b"{}")
    assert canary.hits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(httpserver, canary, status):
    httpserver.expect_request("/hook").respond_with_data(
        "", status=status, headers={"Location": f"http://127.0.0.1:{canary.port}/internal"}
    )

    response = http.post(httpserver.url_for("/hook"), b"{}")

    assert response.status == status
    assert canary.hits == []


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("64:ff9b::808:808", False),  # NAT64 of a public address
        ("2002:808:808::1", False),  # 6to4 of a public address
        ("::ffff:8.8.8.8", False),
        ("64:ff9b:1::1", True),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo
        ("fe80::1%eth0", True),
    ],
)
def test_the_address_policy(address, blocked):
    assert (blocked_reason(address, allow_private=False) is not None) is blocked


def test_metadata_stays_refused_when_private_addresses_are_allowed():
    assert blocked_reason("169.254.169.254", allow_private=True) == "cloud metadata address"
    assert blocked_reason("::ffff:169.254.169.254", allow_private=True) is not None
    assert blocked_reason("fd00:ec2::254", allow_private=True) is not None
    assert blocked_reason("127.0.0.1", allow_private=True) is None
