"""Receive HTTP push wakes: verify the signature, claim the job, run it.

When a job becomes pending the server POSTs ``{"type": "job.pending", "jobId", "spaceId",
"name", "timestamp"}`` to the space's push URL, signed with HMAC-SHA256 of the exact body
under the space's push secret in a header (``X-Jobyard-Signature: sha256=<hex>``). A receiver
checks the signature and claims the job by id; a 409 means another worker was faster, which is
normal.

Two ways to use it:

- ``receive_push(body, signature, secret=..., client=...)``: a plain function for any web
  framework; it returns the claimed job's descriptor (or None) and raises
  ``InvalidSignature`` for a bad signature.
- ``PushApp(worker, secret=...)``: a WSGI app that claims and hands the job to a ``Worker``
  (acked, kept alive and completed like a polled one). Serve it with any WSGI server, or
  ``python -m jobyard push``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import errors
from .client import Client

if TYPE_CHECKING:
    from .worker import Worker

__all__ = [
    "DEFAULT_SIGNATURE_HEADER",
    "PushApp",
    "receive_push",
    "sign",
    "verify_signature",
]

log = logging.getLogger("jobyard.push")

DEFAULT_SIGNATURE_HEADER = "X-Jobyard-Signature"
# A wake is a few hundred bytes; anything much larger is not one.
MAX_BODY_BYTES = 64 * 1024


def sign(body: bytes, secret: str) -> str:
    """The header value the server sends for ``body``: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, signature: str | None, secret: str) -> bool:
    """True when ``signature`` (``sha256=<hex>`` or bare hex) is the HMAC of ``body``."""
    if not signature or not secret:
        return False
    value = signature.strip()
    # Several signatures may be sent during a secret rotation: any valid one will do.
    candidates = [part.strip() for part in value.split(",") if part.strip()]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for candidate in candidates:
        scheme, sep, digest = candidate.partition("=")
        if not sep:
            digest, scheme = scheme, "sha256"
        if scheme.lower() != "sha256":
            continue
        if hmac.compare_digest(digest.lower().encode(), expected.encode()):
            return True
    return False


def parse_wake(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError("push body is not JSON", status=400) from exc
    if not isinstance(message, dict) or not isinstance(message.get("jobId"), str):
        raise errors.ValidationError("push body has no jobId", status=400)
    return message


def receive_push(
    body: bytes,
    signature: str | None,
    *,
    secret: str,
    client: Client,
    names: Iterable[str] | None = None,
) -> dict[str, Any] | None:
    """Verify a push wake and claim its job.

    Returns the job descriptor (with ``claimId``) when this call claimed it; None when the
    wake is for a name not in ``names``, another kind of message, or the job was already
    taken (409) or is gone (404). Raises ``InvalidSignature`` when the signature is wrong.
    """
    if not verify_signature(body, signature, secret):
        raise errors.InvalidSignature("push signature does not match the body", status=401)
    message = parse_wake(body)
    if message.get("type", "job.pending") != "job.pending":
        return None
    wanted = set(names or ())
    if wanted and message.get("name") not in wanted:
        return None
    try:
        return client.claim(message["jobId"])
    except (errors.Conflict, errors.NotFound) as exc:
        log.debug("job %s not claimed: %s", message["jobId"], exc)
        return None


class PushApp:
    """A WSGI app that turns signed wakes into claimed jobs run by ``worker``.

    Answers 401 for a bad signature, 400 for a malformed wake, 202 with
    ``{"claimed": <job id or null>}`` otherwise, and 503 (without claiming) when the worker
    is full or stopping, so the job stays pending for someone else.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        secret: str,
        signature_header: str = DEFAULT_SIGNATURE_HEADER,
        path: str | None = None,
        names: Iterable[str] | None = None,
        on_claim: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.worker = worker
        self.secret = secret
        self.signature_header = signature_header
        # WSGI spells request headers as HTTP_<UPPER_WITH_UNDERSCORES>.
        self._environ_key = "HTTP_" + signature_header.upper().replace("-", "_")
        self.path = path
        self.names = list(names) if names else (worker.names or None)
        self.on_claim = on_claim

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, body = self.handle(environ)
        payload = json.dumps(body).encode()
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def handle(self, environ: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", {"error": "POST only", "code": "method_not_allowed"}
        if self.path and environ.get("PATH_INFO", "") != self.path:
            return "404 Not Found", {"error": "Not found", "code": "not_found"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            return "413 Payload Too Large", {"error": "body too large", "code": "too_large"}
        body = environ["wsgi.input"].read(length) if length else b""
        signature = environ.get(self._environ_key)
        if not verify_signature(body, signature, self.secret):
            return "401 Unauthorized", {"error": "bad signature", "code": "invalid_signature"}
        if not self.worker.has_capacity():
            return "503 Service Unavailable", {"error": "worker is busy", "code": "busy"}
        try:
            descriptor = receive_push(
                body,
                signature,
                secret=self.secret,
                client=self.worker.client,
                names=self.names,
            )
        except errors.ValidationError as exc:
            return "400 Bad Request", {"error": exc.message, "code": "invalid_wake"}
        except errors.JobyardError as exc:
            log.warning("push wake: claim failed: %s", exc)
            return "502 Bad Gateway", {"error": str(exc), "code": "claim_failed"}
        if descriptor is None:
            return "202 Accepted", {"claimed": None}
        if self.on_claim is not None:
            self.on_claim(descriptor)
        self.worker.submit(descriptor)
        return "202 Accepted", {"claimed": descriptor.get("id")}
