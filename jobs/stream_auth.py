"""Authentication of WebSocket connections: an API key in `?token=`, or the browser session.

`StreamAuthMiddleware` puts into the scope:
- `api_key`: the active ApiKey that `?token=` names, else None;
- `token_given`: whether a token was sent at all (an unknown or revoked one means close 4401);
- `token_throttled`: the client address is blocked for repeated key failures (close 4429);
- `origin_ok`: whether the Origin header names this site (ALLOWED_HOSTS or
  CSRF_TRUSTED_ORIGINS);
- `user`: the session user (channels' AuthMiddlewareStack).

The router is deliberately not wrapped in an origin validator: token sockets come from scripts
(no Origin) and from pages on other sites (the public progress widget). Instead the consumers
trust a session only when `origin_ok` holds, which is what stops another site from opening a
socket with a logged-in user's cookie (cross-site WebSocket hijacking).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings

from spaces.auth import failures, resolve_key, touch
from spaces.models import ApiKey


def query_params(scope) -> dict[str, str]:
    """The query string's parameters, first value of each (empty values dropped)."""
    raw = scope.get("query_string", b"")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return {}
    return {name: values[0] for name, values in parse_qs(text).items() if values and values[0]}


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(getattr(settings, "CSRF_TRUSTED_ORIGINS", []))


def origin_allowed(scope) -> bool:
    """True when the Origin header names this site. No Origin at all is not a browser page."""
    origin = header(scope, b"origin")
    if not origin:
        return False
    try:
        parsed = urlparse(origin)
    except ValueError:
        return False
    if parsed.hostname is None:
        return False
    patterns = allowed_origins()
    # Reuse channels' matching (leading-dot subdomains, scheme and port patterns), minus its
    # "*" shortcut for a missing Origin, which does not apply here.
    return OriginValidator(None, patterns).validate_origin(parsed)


THROTTLED = "throttled"


@database_sync_to_async
def _resolve(clear: str, address: str) -> ApiKey | str | None:
    """The key, None for a bad one, or THROTTLED while ADDRESS is blocked for failures.

    The same per-address failure throttle as the REST API: a blocked address is refused
    before the key is checked, so a guesser cannot tell a hit from a miss.
    """
    if failures.retry_after(address) is not None:
        return THROTTLED
    key = resolve_key(clear)
    if key is None:
        failures.failed(address)
        return None
    touch(key)
    return key


class TokenMiddleware:
    """Resolves `?token=` (the same key digest check as the REST API) and the Origin."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = query_params(scope).get("token")
        scope = dict(scope)
        scope["token_given"] = token is not None
        scope["token_throttled"] = False
        scope["api_key"] = None
        if token:
            client = scope.get("client") or ("", 0)
            found = await _resolve(token, client[0] or "")
            if found == THROTTLED:
                scope["token_throttled"] = True
            else:
                scope["api_key"] = found
        scope["origin_ok"] = origin_allowed(scope)
        return await self.inner(scope, receive, send)


def StreamAuthMiddleware(inner):  # noqa: N802 - reads as a middleware class at the call site
    return TokenMiddleware(AuthMiddlewareStack(inner))
