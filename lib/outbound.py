"""Which outbound targets are acceptable: the address policy and URL checks.

Plain helpers with no Django imports, so every app can validate a URL given by a user (Slack
webhooks, push URLs, job callback URLs) with the same rules the notification client enforces
when it connects. The client (notifications/http.py) checks the address it actually connects
to; the URL check here only catches what is visible in the URL itself (scheme, literal
addresses, userinfo), so a user gets a clear 400 at input instead of a failed delivery later.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
ALLOWED_SCHEMES = ("http", "https")

# Cloud metadata endpoints: refused even when private addresses are allowed, since reaching
# one from a notification leaks instance credentials. AWS (v4 and the Nitro IPv6 address),
# ECS task metadata, GCP and Azure IMDS (169.254.169.254), Azure wireserver, Alibaba, Oracle.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)

# Ranges refused on top of what `ipaddress` does not call global (loopback, RFC 1918,
# link-local, unique-local, documentation, unspecified ...). Some special-purpose ranges are
# reported as global by some Python versions, so they are listed explicitly.
_BLOCKED_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT (RFC 6598)
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/128",
        "::1/128",
        "100::/64",  # discard-only
        "64:ff9b:1::/48",  # local-use NAT64: the embedded address is not checkable
        "2001::/32",  # Teredo: the client address is obfuscated
        "2001:db8::/32",
        "fc00::/7",  # unique local (includes fd00:ec2::254)
        "fe80::/10",
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_addresses(ip: IPAddress) -> list[IPAddress]:
    """IP itself plus any IPv4 address an IPv6 form wraps (mapped, compatible, NAT64, 6to4).

    A target such as ::ffff:127.0.0.1 or 64:ff9b::7f00:1 reaches 127.0.0.1 on many networks,
    so the wrapped address must pass the same checks.
    """
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
        if ip in _IPV4_COMPATIBLE or ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
    return found


def _is_private(ip: IPAddress) -> bool:
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return True
    if not ip.is_global:
        return True
    networks = _BLOCKED_V4 if isinstance(ip, ipaddress.IPv4Address) else _BLOCKED_V6
    return any(ip in net for net in networks)


def blocked_reason(ip: IPAddress | str, *, allow_private: bool) -> str | None:
    """Why connecting to IP is refused, or None when it is acceptable."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    for candidate in embedded_addresses(ip):
        if candidate in METADATA_ADDRESSES:
            return "cloud metadata address"
        if not allow_private and _is_private(candidate):
            return "private, loopback or reserved address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """HOST as an IP address when it is written as one (brackets allowed), else None.

    Only canonical forms: shorthand such as 127.1 or 2130706433 is a name to the URL parser
    but the resolver turns it into an address, and the connect-time check catches it.
    """
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def _is_localhost_name(host: str) -> bool:
    # RFC 6761: localhost and *.localhost always mean loopback.
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def validate_outbound_url(url: object, *, allow_private: bool) -> list[str]:
    """Problems with URL as a notification target; an empty list means acceptable.

    Messages never repeat the URL: it may carry a secret (a Slack webhook token).
    """
    if not isinstance(url, str):
        return ["must be a string"]
    if len(url) > MAX_URL_LENGTH:
        return [f"must be at most {MAX_URL_LENGTH} characters"]
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return ["must not contain spaces or control characters"]
    parts = _split(url)
    if parts is None:
        return ["is not a valid URL"]
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return ["must be an http or https URL"]
    if not parts.hostname:
        return ["must include a host name"]
    if parts.username is not None or parts.password is not None:
        return ["must not contain a user name or password (use a header instead)"]
    if not url.isascii():
        return ["must be ASCII (encode international names with punycode)"]
    ip = literal_address(parts.hostname)
    if ip is not None:
        reason = blocked_reason(ip, allow_private=allow_private)
        if reason:
            return [f"points to a {reason}, which is not allowed"]
    elif not allow_private and _is_localhost_name(parts.hostname):
        return ["points to a private, loopback or reserved address, which is not allowed"]
    return []


def url_host(url: str) -> str:
    """The host part of URL, for logs and delivery rows (never the path or query)."""
    parts = _split(url or "")
    if parts is None or not parts.hostname:
        return ""
    return parts.hostname[:255]


def redacted_url(url: str) -> str:
    """URL without its secrets, for job events: no user or password, no fragment, and every
    query value replaced (`?token=redacted`); the names stay so a reader can tell them apart."""
    parts = _split(url or "")
    if parts is None or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    query = "&".join(
        f"{name}=redacted" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return f"{parts.scheme}://{host}{port}{parts.path}" + (f"?{query}" if query else "")


def masked_url(url: str) -> str:
    """URL shortened to scheme and host, for display: `https://hooks.slack.com/…`."""
    parts = _split(url or "")
    if parts is None or not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}/…"
