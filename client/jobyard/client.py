"""The producer (and low-level worker) side of the Jobyard HTTP API.

One ``Client`` holds a ``requests.Session`` (connection pooling, thread-safe for the way it is
used here: one request per call, no shared mutable state per request) and speaks to
``<url>/api/v1``. Every method returns the server's JSON as plain dicts and lists, and raises a
typed error from ``jobyard.errors`` for an error answer.

Transient failures are retried by urllib3's ``Retry`` mounted on the session (``jobyard.retry``):
reads always, POSTs only where a repeat is safe (``create`` carries an idempotency key).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from . import __version__, errors
from .retry import READ_METHODS, REPLAY_METHODS, make_retry

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
    # Workflows (docs/workflows.md): job ids, or in create_many positions of earlier jobs.
    "depends_on": "dependsOn",
    "on_parent_failure": "onParentFailure",
    # Per-key flow control: the name's per-key limits hold for each distinct value.
    "concurrency_key": "concurrencyKey",
    # Groups with a completion step: {"name", "on_complete": {the completion job's fields}}.
    "group": "group",
}
_API_FIELDS = frozenset(_CREATE_FIELDS.values())

USER_AGENT = f"jobyard-python/{__version__}"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("scheduled_for must be timezone-aware")
        return value.isoformat()
    return value


def group_field(group: Mapping[str, Any]) -> dict[str, Any]:
    """A create body's ``group`` from ``{"name": ..., "on_complete": {job fields}}`` (or
    ``onComplete``); the completion job's fields in keyword or API style, as ``job_fields``."""
    unknown = set(group) - {"name", "on_complete", "onComplete"}
    if unknown:
        raise TypeError(f"unknown group field {sorted(unknown)[0]!r}")
    on_complete = group.get("on_complete", group.get("onComplete"))
    if not isinstance(on_complete, Mapping):
        raise TypeError("a group needs on_complete, the completion job's fields")
    return {"name": group.get("name"), "onComplete": job_fields(on_complete)}


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
        body[field] = group_field(value) if field == "group" else _iso(value)
    if "name" not in body:
        raise TypeError("a job needs a name")
    return body


def new_idempotency_key() -> str:
    """A fresh key for one create: its retries carry the same key, so they make one job."""
    return f"jobyard-{uuid.uuid4().hex}"


class Client:
    """A client for one Jobyard server, optionally bound to a space.

    ``url`` is the server's base URL (``https://jobs.example.com``); ``/api/v1`` is added.
    ``space`` is the space public id, needed for create, poll and list. ``url``, ``space`` and
    ``token`` default to the ``JOBYARD_URL``, ``JOBYARD_SPACE`` and ``JOBYARD_TOKEN`` environment
    variables.

    ``retries`` transient failures are retried per call, ``backoff_factor`` seconds doubling
    each time, with jitter; ``retries=0`` turns that off. A ``session`` of your own is used as
    given (its adapters, its retries) for every call.
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
        retries: int = 4,
        backoff_factor: float = 0.5,
        retry_after_max: float = 60.0,
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
        replay_session = session
        if session is None:
            # Two sessions sharing one headers dict: the second's Retry may repeat a POST, and
            # only the calls that are safe to repeat go through it (jobyard.retry).
            session = self._session(
                pool_size,
                make_retry(
                    retries,
                    methods=READ_METHODS,
                    backoff_factor=backoff_factor,
                    retry_after_max=retry_after_max,
                ),
            )
            replay_session = self._session(
                pool_size,
                make_retry(
                    retries,
                    methods=REPLAY_METHODS,
                    backoff_factor=backoff_factor,
                    retry_after_max=retry_after_max,
                ),
            )
            replay_session.headers = session.headers
        session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                # The server's workers view names this process by it (docs/dashboard.md).
                "X-Worker-Id": f"{socket.gethostname()}:{os.getpid()}"[:200],
            }
        )
        self.session = session
        self._replay_session = replay_session

    @staticmethod
    def _session(pool_size: int, retry: Any) -> requests.Session:
        session = requests.Session()
        # One pool slot per worker thread at least, so threads don't queue for sockets.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, space={self.space!r})"

    def close(self) -> None:
        self.session.close()
        if self._replay_session is not self.session:
            self._replay_session.close()

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
        replay: bool = False,
    ) -> Any:
        """One API call; the decoded JSON body, or a typed error. ``replay``: the call is safe
        to repeat after it may have reached the server (see ``jobyard.retry``)."""
        response = self._send(
            method,
            path,
            json_body=json_body,
            params=params,
            data=data,
            headers=headers,
            claim_id=claim_id,
            timeout=timeout,
            send_json=send_json,
            replay=replay,
        )
        return self._decode(method, path, response)

    def _send(
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
        replay: bool = False,
    ) -> requests.Response:
        """The raw answer of a call that succeeded (2xx); a typed error otherwise. ``path`` is
        under ``/api/v1``, or a whole URL of this server (a ``Link: rel="next"``)."""
        hdrs = dict(headers or {})
        if claim_id:
            hdrs["X-Claim-Id"] = claim_id
        body = data
        if send_json or json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        url = path if path.startswith(("http://", "https://")) else self.api_url + path
        session = self._replay_session if replay else self.session
        try:
            response = session.request(
                method,
                url,
                params={k: v for k, v in (params or {}).items() if v is not None} or None,
                data=body,
                headers=hdrs,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as exc:
            raise errors.Unreachable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise errors.error_from_response(response)
        return response

    @staticmethod
    def _decode(method: str, path: str, response: requests.Response) -> Any:
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
        depends_on: Iterable[str] | None = None,
        on_parent_failure: str | None = None,
        concurrency_key: str | None = None,
        group: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create one job: ``{id, spaceId, status, realtimeUrl, groupId}``.

        A repeat with the same ``idempotency_key`` returns the job made the first time. Without
        one the client makes up a key, so its own retries of this call never make two jobs.

        ``depends_on`` lists the ids of jobs this one waits for: it is ``blocked`` until they
        are done, then runs with their results in ``job.parents``. ``on_parent_failure``
        (``"cancel"``, the server's default, or ``"run"``) says what a dead or killed parent
        does to it. In ``create_many`` a job may name earlier jobs of the same call by their
        position (an int).

        ``concurrency_key`` (1-200 printable characters, e.g. a customer id) puts the job under
        its name's per-key limits (``set_limit(..., key_concurrency=, key_rate=)``): they hold
        for each distinct key, and a key at its limit never holds back jobs of other keys.

        ``group`` (``{"name": ..., "on_complete": {"name": "mail", ...}}``) makes the job a
        group of one: when it has finished, the ``on_complete`` job is created once, with the
        members' ids and outcome counts in its payload's ``group``. For a group of many jobs
        give it to ``create_many``.
        """
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
                "idempotency_key": idempotency_key or new_idempotency_key(),
                "backoff": backoff,
                "depends_on": list(depends_on) if depends_on is not None else None,
                "on_parent_failure": on_parent_failure,
                "concurrency_key": concurrency_key,
                "group": group,
            }
        )
        return self.request(
            "POST", f"/spaces/{quote(self._space(space))}/jobs", json_body=body, replay=True
        )

    def create_many(
        self,
        jobs: Iterable[Mapping[str, Any]],
        *,
        space: str | None = None,
        group: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Create up to 1000 jobs at once, all or nothing; the answers in input order.

        Each job is a mapping with ``name`` and the other fields, in keyword style
        (``max_retries``) or API style (``maxRetries``). Jobs without an idempotency key get
        one made up, as in ``create``, so a retried batch makes each job once.

        With ``group`` (``{"name": ..., "on_complete": {...}}``) every job of the call is a
        member of one new group (each item carries it), and the ``on_complete`` job is created
        once when they have all finished; each answer's ``groupId`` names the group
        (``get_group``).
        """
        items = [job_fields(job) for job in jobs]
        if not items:
            return []
        if group is not None:
            shared = group_field(group)
            for item in items:
                item["group"] = shared
        for item in items:
            item.setdefault("idempotencyKey", new_idempotency_key())
        return self.request(
            "POST", f"/spaces/{quote(self._space(space))}/jobs", json_body=items, replay=True
        )

    def get(self, job_id: str) -> dict[str, Any]:
        """The job with its event history."""
        return self.request("GET", f"/jobs/{quote(job_id)}")

    def get_group(self, group_id: str, *, space: str | None = None) -> dict[str, Any]:
        """A group's progress: ``{id, name, total, done, completed, dead, killed,
        completionJobId, firedAt, createdAt}``."""
        return self.request("GET", f"/spaces/{quote(self._space(space))}/groups/{quote(group_id)}")

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
        """One page of jobs, newest first: ``{"jobs": [...], "nextCursor", "next"}``.

        The server answers a bare array with the next page in a ``Link: <url>; rel="next"``
        header (``next`` is that URL, ``nextCursor`` its cursor); an older server's
        ``{"jobs", "nextCursor"}`` object gives the same shape.
        """
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        response = self._send(
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
        return _page(self._decode("GET", "/jobs", response), response)

    def iter_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        name: str | None = None,
        page_size: int = 100,
        space: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching job, newest first, fetching pages as needed.

        Follows the ``Link: rel="next"`` URL (or an older server's ``nextCursor``), which
        stays stable under inserts; falls back to ``offset`` paging on a server with neither.
        """
        page = self.list(status=status, name=name, limit=page_size, space=space)
        offset = 0
        while True:
            jobs = page["jobs"]
            yield from jobs
            if page["next"]:
                response = self._send("GET", self._on_this_server(page["next"]))
                page = _page(self._decode("GET", "/jobs", response), response)
            elif page["nextCursor"]:
                page = self.list(
                    status=status,
                    name=name,
                    limit=page_size,
                    cursor=page["nextCursor"],
                    space=space,
                )
            elif len(jobs) < page_size or not jobs:
                return
            else:
                offset += len(jobs)
                page = self.list(
                    status=status, name=name, limit=page_size, offset=offset, space=space
                )

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

    def _on_this_server(self, url: str) -> str:
        """URL's path and query on this client's server: the key is never sent elsewhere, and
        a server that names itself differently (a proxy, PUBLIC_URL) is still reached."""
        parts, base = urlsplit(url), urlsplit(self.base_url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    # --- schedules and flow-control limits -----------------------------------------------

    def schedules(self, *, space: str | None = None) -> list[dict[str, Any]]:
        """The space's schedules, by name."""
        answer = self.request("GET", f"/spaces/{quote(self._space(space))}/schedules")
        return list((answer or {}).get("schedules") or [])

    def get_schedule(self, name: str, *, space: str | None = None) -> dict[str, Any]:
        return self.request(
            "GET", f"/spaces/{quote(self._space(space))}/schedules/{quote(name, safe='')}"
        )

    def create_schedule(
        self,
        name: str,
        cron: str,
        job: Mapping[str, Any],
        *,
        timezone: str | None = None,
        enabled: bool | None = None,
        overlap: str | None = None,
        space: str | None = None,
    ) -> dict[str, Any]:
        """A recurring job: ``cron`` (5 fields) in ``timezone``; ``job`` is the create body
        (``name``, ``payload``...). 409 ``schedule_exists`` if the name is taken."""
        body: dict[str, Any] = {"name": name, "cron": cron, "job": job_fields(job)}
        for key, value in (("timezone", timezone), ("enabled", enabled), ("overlap", overlap)):
            if value is not None:
                body[key] = value
        return self.request(
            "POST", f"/spaces/{quote(self._space(space))}/schedules", json_body=body
        )

    def pause_schedule(self, name: str, *, space: str | None = None) -> dict[str, Any]:
        # Pausing a paused schedule answers the same: safe to repeat.
        return self.request(
            "POST",
            f"/spaces/{quote(self._space(space))}/schedules/{quote(name, safe='')}/pause",
            json_body={},
            replay=True,
        )

    def resume_schedule(self, name: str, *, space: str | None = None) -> dict[str, Any]:
        return self.request(
            "POST",
            f"/spaces/{quote(self._space(space))}/schedules/{quote(name, safe='')}/resume",
            json_body={},
            replay=True,
        )

    def limits(self, *, space: str | None = None) -> list[dict[str, Any]]:
        """The per-name flow-control limits: ``[{name, concurrency, rate}]``."""
        answer = self.request("GET", f"/spaces/{quote(self._space(space))}/limits")
        return list((answer or {}).get("limits") or [])

    def set_limit(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        key_concurrency: int | None = None,
        key_rate: float | None = None,
        space: str | None = None,
    ) -> dict[str, Any]:
        """At most ``concurrency`` jobs named ``name`` at once and/or ``rate`` started per
        second, and the same for each distinct ``concurrency_key`` of the name
        (``key_concurrency``, ``key_rate``). PUT: the values not given are removed."""
        return self.request(
            "PUT",
            f"/spaces/{quote(self._space(space))}/limits/{quote(name, safe='')}",
            json_body={
                "concurrency": concurrency,
                "rate": rate,
                "keyConcurrency": key_concurrency,
                "keyRate": key_rate,
            },
        )

    def delete_limit(self, name: str, *, space: str | None = None) -> None:
        self.request("DELETE", f"/spaces/{quote(self._space(space))}/limits/{quote(name, safe='')}")

    # --- the job's stream ----------------------------------------------------------------

    def stream(
        self, job_id: str, *, realtime_url: str | None = None, idle: float = 5.0
    ) -> Iterator[dict[str, Any]]:
        """The job's stream messages as dicts (``init``, then its events), as they come.

        After ``idle`` seconds of silence it yields ``{"type": "idle"}`` so the caller can look
        at the job itself (stream messages are best effort). Raises ``Unreachable`` when the
        stream cannot be opened or drops (the caller may poll instead).
        """
        try:
            from websockets.exceptions import WebSocketException
            from websockets.sync.client import connect
        except ImportError as exc:  # pragma: no cover - websockets is a dependency
            raise errors.Unreachable(f"no websockets package: {exc}") from exc
        url = self._realtime(realtime_url) if realtime_url else self.realtime_url(job_id)
        try:
            with connect(url, open_timeout=10, user_agent_header=USER_AGENT, max_size=None) as ws:
                while True:
                    try:
                        raw = ws.recv(timeout=idle)
                    except TimeoutError:
                        yield {"type": "idle"}
                        continue
                    try:
                        message = json.loads(raw)
                    except (TypeError, ValueError):
                        continue
                    if isinstance(message, dict):
                        yield message
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise errors.Unreachable(f"job stream of {job_id}: {exc}") from exc

    def _realtime(self, url: str) -> str:
        """The create answer's ``realtimeUrl`` with this client's key (``?token=``)."""
        parts = urlsplit(url)
        query = dict(parse_qs(parts.query))
        query["token"] = [self.token]
        return urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(query, doseq=True), "")
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
        # A repeat only extends the deadline again: safe to retry at the transport.
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/keepalive",
            json_body=body,
            claim_id=claim_id,
            replay=True,
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
        self,
        job_id: str,
        error: str | Mapping[str, Any],
        *,
        retry: bool = True,
        claim_id: str | None = None,
    ) -> Any:
        """Fail the current attempt. ``error`` is a message, or an object such as
        ``{"type", "message", "traceback"}`` (``jobyard.errors.error_info``), which the server
        keeps as JSON and the dashboard shows field by field."""
        return self.request(
            "POST",
            f"/jobs/{quote(job_id)}/fail",
            json_body={"error": error if isinstance(error, str) else dict(error), "retry": retry},
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


def _page(body: Any, response: requests.Response) -> dict[str, Any]:
    """A page of the job list in one shape, from either server answer (see ``Client.list``)."""
    next_url = (response.links.get("next") or {}).get("url")
    cursor = body.get("nextCursor") if isinstance(body, dict) else None
    if next_url:
        next_url = urljoin(response.url, next_url)
        cursor = cursor or (parse_qs(urlsplit(next_url).query).get("cursor") or [None])[0]
    return {"jobs": _page_jobs(body), "nextCursor": cursor or None, "next": next_url or None}
