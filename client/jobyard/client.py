"""The producer (and low-level worker) side of the Jobyard HTTP API.

One ``Client`` holds a ``requests.Session`` (connection pooling, thread-safe for the way it is
used here: one request per call, no shared mutable state per request) and speaks to
``<url>/api/v1``. Every method returns the server's JSON as plain dicts and lists, and raises a
typed error from ``jobyard.errors`` for an error answer.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from . import errors

__all__ = ["Client", "FINAL_STATUSES"]

FINAL_STATUSES = frozenset({"completed", "dead", "killed"})

# Python-style keyword -> API field, for the job fields on create.
_CREATE_FIELDS = {
    "name": "name",
    "payload": "payload",
    "max_retries": "maxRetries",
    "timeout_seconds": "timeoutSeconds",
    "scheduled_for": "scheduledFor",
    "callback_url": "callbackUrl",
    "callback_headers": "callbackHeaders",
    "priority": "priority",
    "idempotency_key": "idempotencyKey",
    "backoff": "backoff",
}
_API_FIELDS = frozenset(_CREATE_FIELDS.values())

USER_AGENT = "jobyard-python/0.1"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("scheduled_for must be timezone-aware")
        return value.isoformat()
    return value


def job_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """API fields of a job from keyword-style (``max_retries``) or API-style (``maxRetries``)
    keys; ``None`` values are left out so the server's defaults apply."""
    body: dict[str, Any] = {}
    for key, value in spec.items():
        field = _CREATE_FIELDS.get(key, key if key in _API_FIELDS else None)
        if field is None:
            raise TypeError(f"unknown job field {key!r}")
        if value is None and field != "payload":
            continue
        body[field] = _iso(value)
    if "name" not in body:
        raise TypeError("a job needs a name")
    return body


class Client:
    """A client for one Jobyard server, optionally bound to a space.

    ``url`` is the server's base URL (``https://jobs.example.com``); ``/api/v1`` is added.
    ``space`` is the space public id, needed for create, poll and list. ``url``, ``space`` and
    ``token`` default to the ``JOBYARD_URL``, ``JOBYARD_SPACE`` and ``JOBYARD_TOKEN`` environment
    variables.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        space: str | None = None,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        pool_size: int = 16,
    ) -> None:
        url = url or os.environ.get("JOBYARD_URL")
        token = token or os.environ.get("JOBYARD_TOKEN")
        if not url:
            raise ValueError("no server URL: pass url= or set JOBYARD_URL")
        if not token:
            raise ValueError("no API token: pass token= or set JOBYARD_TOKEN")
        self.base_url = url.rstrip("/")
        if self.base_url.endswith("/api/v1"):
            self.base_url = self.base_url[: -len("/api/v1")]
        self.api_url = self.base_url + "/api/v1"
        self.token = token
        self.space = space or os.environ.get("JOBYARD_SPACE") or None
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            # One pool slot per worker thread at least, so threads don't queue for sockets.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )
        self.session = session

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, space={self.space!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def _space(self, space: str | None) -> str:
        space = space or self.space
        if not space:
            raise ValueError("no space: pass space= or set JOBYARD_SPACE")
        return space

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        claim_id: str | None = None,
        timeout: float | None = None,
        send_json: bool = False,
    ) -> Any:
        """One API call; the decoded JSON body, or a typed error."""
        hdrs = dict(headers or {})
        if claim_id:
            hdrs["X-Claim-Id"] = claim_id
        body = data
        if send_json or json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            response = self.session.request(
                method,
                self.api_url + path,
                params={k: v for k, v in (params or {}).items() if v is not None} or None,
                data=body,
                headers=hdrs,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as exc:
            raise errors.Unreachable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise errors.error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise errors.ServerError(
                f"{method} {path}: the answer is not JSON", status=response.status_code
            ) from exc

    # --- producer ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        payload: Any = None,
        *,
        space: str | None = None,
        max_retries: int | None = None,
        timeout_seconds: int | None = None,
        scheduled_for: datetime | str | None = None,
        callback_url: str | None = None,
        callback_headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        backoff: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create one job: ``{id, spaceId, status, realtimeUrl}``. With ``idempotency_key`` a
        repeat returns the job made the first time."""
        body = job_fields(
            {
                "name": name,
                "payload": payload,
                "max_retries": max_retries,
                "timeout_seconds": timeout_seconds,
                "scheduled_for": scheduled_for,
                "callback_url": callback_url,
                "callback_headers": callback_headers,
                "priority": priority,
                "idempotency_key": idempotency_key,
                "backoff": backoff,
            }
        )
        return self.request("POST", f"/spaces/{quote(self._space(space))}/jobs", json_body=body)

    def create_many(
        self, jobs: Iterable[Mapping[str, Any]], *, space: str | None = None
    ) -> list[dict[str, Any]]:
        """Create up to 1000 jobs at once, all or nothing; the answers in input order.

        Each job is a mapping with ``name`` and the other fields, in keyword style
        (``max_retries``) or API style (``maxRetries``).
        """
        items = [job_fields(job) for job in jobs]
        if not items:
            return []
        return self.request("POST", f"/spaces/{quote(self._space(space))}/jobs", json_body=items)

    def get(self, job_id: str) -> dict[str, Any]:
        """The job with its event history."""
        return self.request("GET", f"/jobs/{quote(job_id)}")

    def get_progress(self, job_id: str) -> Any:
        return self.request("GET", f"/jobs/{quote(job_id)}/progress")

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        name: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        cursor: str | None = None,
        space: str | None = None,
    ) -> dict[str, Any]:
        """One page of jobs, newest first, as the server sends it (``jobs``, ``nextCursor``...)."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        return self.request(
            "GET",
            f"/spaces/{quote(self._space(space))}/jobs",
            params={
                "status": status,
                "name": name,
                "limit": limit,
                "offset": offset,
                "cursor": cursor,
            },
        )

    def iter_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        name: str | None = None,
        page_size: int = 100,
        space: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching job, newest first, fetching pages as needed.

        Follows ``nextCursor`` when the server gives one (stable under inserts) and falls
        back to ``offset`` paging otherwise.
        """
        cursor: str | None = None
        offset = 0
        while True:
            page = self.list(
                status=status,
                name=name,
                limit=page_size,
                cursor=cursor,
                offset=None if cursor else (offset or None),
                space=space,
            )
            jobs = _page_jobs(page)
            yield from jobs
            next_cursor = page.get("nextCursor") if isinstance(page, dict) else None
            if next_cursor:
                cursor = next_cursor
                continue
            if cursor is not None or len(jobs) < page_size:
                return
            offset += len(jobs)

    def kill(self, job_id: str, reason: str | None = None) -> Any:
        body = {"reason": reason} if reason else {}
        return self.request("POST", f"/jobs/{quote(job_id)}/kill", json_body=body)

    def retry(self, job_id: str) -> Any:
        """Send a dead or killed job back to the queue, its attempts reset."""
        return self.request("POST", f"/jobs/{quote(job_id)}/retry", json_body={})

    def logs(
        self,
        job_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
        level: str | None = None,
        q: str | None = None,
    ) -> Any:
        return self.request(
            "GET",
            f"/jobs/{quote(job_id)}/logs",
            params={"after": after, "before": before, "limit": limit, "level": level, "q": q},
        )

    def realtime_url(self, job_id: str) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path}/api/v1/realtime/{quote(job_id)}"
        return urlunsplit((scheme, parts.netloc, path, urlencode({"token": self.token}), ""))

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        poll_interval: float = 1.0,
        use_stream: bool = True,
    ) -> dict[str, Any]:
        """Block until the job is completed, dead or killed, and return it (with ``result``).

        Follows the job's WebSocket stream; when the stream is unavailable (no ``websockets``,
        a proxy without WebSockets, a key without ``jobs:read``) it polls ``GET /jobs/{id}``.
        Raises ``WaitTimeout`` after ``timeout`` seconds (``None``: no limit).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if use_stream:
            job = self._wait_stream(job_id, deadline)
            if job is not None:
                return job
        return self._wait_poll(job_id, deadline, poll_interval)

    def _wait_stream(
        self, job_id: str, deadline: float | None, recheck: float = 5.0
    ) -> dict[str, Any] | None:
        """The final job, or None when the stream cannot be used (the caller then polls)."""
        try:
            from websockets.exceptions import WebSocketException
            from websockets.sync.client import connect
        except ImportError:  # pragma: no cover - websockets is a dependency
            return None

        def remaining() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        try:
            left = remaining()
            open_timeout = 10.0 if left is None else max(0.1, min(10.0, left))
            with connect(
                self.realtime_url(job_id),
                open_timeout=open_timeout,
                user_agent_header=USER_AGENT,
                max_size=None,
            ) as ws:
                # Subscribe first, then read the job: an event between the two is not lost.
                job = self.get(job_id)
                if job.get("status") in FINAL_STATUSES:
                    return job
                while True:
                    left = remaining()
                    if left is not None and left <= 0:
                        raise errors.WaitTimeout(f"job {job_id} did not finish in time")
                    try:
                        raw = ws.recv(timeout=recheck if left is None else min(left, recheck))
                    except TimeoutError:
                        # Stream messages are best effort (a transition made by another
                        # process on the in-memory channel layer never arrives, a Redis
                        # hiccup may drop one): look at the job itself now and then.
                        job = self.get(job_id)
                        if job.get("status") in FINAL_STATUSES:
                            return job
                        continue
                    try:
                        message = json.loads(raw)
                    except (TypeError, ValueError):
                        continue
                    if not isinstance(message, dict):
                        continue
                    if message.get("type") in FINAL_STATUSES or (
                        message.get("status") in FINAL_STATUSES
                    ):
                        return self.get(job_id)
        except (OSError, WebSocketException, TimeoutError) as exc:
            if isinstance(exc, errors.WaitTimeout):
                raise
            # Closed by the server (4401/4403), refused, or dropped: polling still works.
            return None

    def _wait_poll(
        self, job_id: str, deadline: float | None, poll_interval: float
    ) -> dict[str, Any]:
        while True:
            job = self.get(job_id)
            if job.get("status") in FINAL_STATUSES:
                return job
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.WaitTimeout(f"job {job_id} did not finish in time")
                time.sleep(min(poll_interval, left))
            else:
                time.sleep(poll_interval)

    # --- worker calls --------------------------------------------------------------------

    def poll(
        self,
        *,
        count: int = 1,
        names: str | Iterable[str] | None = None,
        wait_seconds: float | None = None,
        ack: bool = False,
        space: str | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Claim up to ``count`` pending jobs; their descriptors (with ``claimId``).

        ``wait_seconds`` (0-20) long-polls until a job is available; ``ack`` asks the server
        to start the jobs at once (they come back running).
        """
        body: dict[str, Any] = {"count": count}
        if names:
            body["names"] = [names] if isinstance(names, str) else list(names)
        if wait_seconds:
            body["waitSeconds"] = (
                int(wait_seconds) if wait_seconds == int(wait_seconds) else wait_seconds
            )
        if ack:
            body["ack"] = True
        # A long poll holds the request open: the read timeout must outlast it.
        read_timeout = timeout or (self.timeout + (wait_seconds or 0))
        answer = self.request(
            "POST",
            f"/spaces/{quote(self._space(space))}/jobs/poll",
            json_body=body,
            timeout=read_timeout,
        )
        return list((answer or {}).get("jobs") or [])

    def claim(self, job_id: str) -> dict[str, Any]:
        """Claim one pending job by id (a push wake); its descriptor. 409 if not pending."""
        answer = self.request("POST", f"/jobs/{quote(job_id)}/claim", json_body={})
        return answer.get("job", answer) if isinstance(answer, dict) else answer

    def ack(self, job_id: str, *, claim_id: str | None = None) -> Any:
        return self.request("POST", f"/jobs/{quote(job_id)}/ack", json_body={}, claim_id=claim_id)

    def progress(
        self,
        job_id: str,
        percent: float,
        message: str,
        sub_progress: Mapping[str, Any] | None = None,
        *,
        claim_id: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"percent": percent, "message": message}
        if sub_progress:
            body["subProgress"] = dict(sub_progress)
        return self.request(
            "POST", f"/jobs/{quote(job_id)}/progress", json_body=body, claim_id=claim_id
        )

    def checkpoint(
        self, job_id: str, data: Mapping[str, Any], *, claim_id: str | None = None
    ) -> Any:
        return self.request(
            "POST", f"/jobs/{quote(job_id)}/checkpoint", json_body=dict(data), claim_id=claim_id
        )

    def event(
        self, job_id: str, type: str, data: Any = None, *, claim_id: str | None = None
    ) -> Any:
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/event",
            json_body={"type": type, "data": data},
            claim_id=claim_id,
        )

    def keepalive(
        self,
        job_id: str,
        extend_seconds: float | None = None,
        *,
        claim_id: str | None = None,
    ) -> Any:
        body = {"extendSeconds": extend_seconds} if extend_seconds else {}
        return self.request(
            "POST", f"/jobs/{quote(job_id)}/keepalive", json_body=body, claim_id=claim_id
        )

    def send_logs(
        self,
        job_id: str,
        lines: Iterable[Mapping[str, Any]],
        *,
        claim_id: str | None = None,
        compress: bool = False,
    ) -> Any:
        """Append log lines (``{level, message, timestamp?, ...attributes}``), sent as NDJSON."""
        payload = "".join(
            json.dumps(dict(line), separators=(",", ":"), default=str) + "\n" for line in lines
        ).encode()
        headers = {"Content-Type": "application/x-ndjson"}
        if compress:
            payload = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/logs",
            data=payload,
            headers=headers,
            claim_id=claim_id,
        )

    def complete(self, job_id: str, result: Any = None, *, claim_id: str | None = None) -> Any:
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/complete",
            json_body={"result": result},
            claim_id=claim_id,
        )

    def fail(
        self, job_id: str, error: str, *, retry: bool = True, claim_id: str | None = None
    ) -> Any:
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/fail",
            json_body={"error": error, "retry": retry},
            claim_id=claim_id,
        )

    def complete_many(self, items: Iterable[Mapping[str, Any]]) -> Any:
        """Complete several jobs in one call: items ``{id, claimId?, result?}``.

        A server without the batch endpoint answers 404/405; use ``complete`` per job then.
        """
        return self.request(
            "POST", "/jobs/complete", json_body={"jobs": [dict(item) for item in items]}
        )

    def fail_many(self, items: Iterable[Mapping[str, Any]]) -> Any:
        """Fail several jobs in one call: items ``{id, claimId?, error, retry?}``."""
        return self.request(
            "POST", "/jobs/fail", json_body={"jobs": [dict(item) for item in items]}
        )


def _page_jobs(page: Any) -> list[dict[str, Any]]:
    if isinstance(page, list):
        return page
    if isinstance(page, dict):
        for key in ("jobs", "results", "data"):
            if isinstance(page.get(key), list):
                return page[key]
    return []
