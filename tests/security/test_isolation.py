"""Tenant isolation matrix: every route of the project, every method, against another tenant.

The routes are enumerated from the URL resolver (and the WebSocket router); each must have an
entry in ROUTES (or be one of the admin routes generated from ADMIN_OBJECTS), so a new route
fails `test_every_route_is_in_the_matrix` until someone decides how it is attacked here.

Attacker: space A's key with every scope, and charlie (owner of org A, outsider to org B).
Target: space B's job, schedule, key, member and the space itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from jobs import streams
from jobs.models import Job, JobEvent, JobGroup
from jobs.routing import websocket_urlpatterns
from orgs.models import Invitation, Membership
from schedules.models import Schedule

from .conftest import JOB_MARKER, Tenants


@dataclass(frozen=True)
class Case:
    """How a route is attacked. kind:
    - api: A's key on B's object, every method: 403 or 404, no B data, nothing changes;
    - api-batch: batch endpoints answer 200 per item: B's job must come back not_found;
    - dashboard: charlie on B's object, GET and POST: 404; anonymous: redirect to login;
    - public: no tenant object in the path: charlie and anonymous never see B's data;
    - ws: WebSocket routes, covered by the tests at the end of this file.
    """

    kind: str
    methods: tuple[str, ...] = ()
    bodies: dict[str, Any] = field(default_factory=dict)


def api(*methods: str, **bodies: Any) -> Case:
    return Case("api", methods, bodies)


DASHBOARD = Case("dashboard", ("GET", "POST"))
PUBLIC = Case("public", ("GET",))
WS = Case("ws")

ROUTES: dict[str, Case] = {
    # --- API (A's key, every scope) ---
    "api/v1/schema": PUBLIC,
    "api/v1/docs": PUBLIC,
    "api/v1/spaces/<str:spaceId>/jobs": api(
        "GET", "POST", POST={"name": "a.sneaks.in", "payload": {}}
    ),
    "api/v1/spaces/<str:spaceId>/jobs/poll": api("POST", POST={"count": 10}),
    "api/v1/spaces/<str:spaceId>/limits": api("GET"),
    "api/v1/spaces/<str:spaceId>/limits/<str:name>": api("PUT", "DELETE", PUT={"concurrency": 1}),
    "api/v1/spaces/<str:spaceId>/workers": api("GET"),
    "api/v1/spaces/<str:spaceId>/overview": api("GET"),
    "api/v1/spaces/<str:spaceId>/errors": api("GET"),
    "api/v1/spaces/<str:spaceId>/groups/<str:groupId>": api("GET"),
    "api/v1/spaces/<str:spaceId>/errors/<str:fingerprint>/retry": api("POST", POST={}),
    "api/v1/spaces/<str:spaceId>/errors/<str:fingerprint>/kill": api("POST", POST={}),
    "api/v1/jobs/complete": Case("api-batch", ("POST",)),
    "api/v1/jobs/fail": Case("api-batch", ("POST",)),
    "api/v1/jobs/<str:jobId>": api("GET"),
    "api/v1/jobs/<str:jobId>/claim": api("POST", POST={}),
    "api/v1/jobs/<str:jobId>/ack": api("POST", POST={"claimId": "{claim}"}),
    "api/v1/jobs/<str:jobId>/progress": api(
        "GET", "POST", POST={"percent": 50, "message": "hijacked", "claimId": "{claim}"}
    ),
    "api/v1/jobs/<str:jobId>/checkpoint": api(
        "POST", POST={"data": {"step": 1}, "claimId": "{claim}"}
    ),
    "api/v1/jobs/<str:jobId>/event": api(
        "POST", POST={"type": "x.custom", "data": {}, "claimId": "{claim}"}
    ),
    "api/v1/jobs/<str:jobId>/keepalive": api("POST", POST={"claimId": "{claim}"}),
    "api/v1/jobs/<str:jobId>/logs": api(
        "GET", "POST", POST={"lines": [{"level": "info", "message": "hi"}]}
    ),
    "api/v1/jobs/<str:jobId>/complete": api(
        "POST", POST={"result": {"owned": True}, "claimId": "{claim}"}
    ),
    "api/v1/jobs/<str:jobId>/fail": api("POST", POST={"error": "owned", "claimId": "{claim}"}),
    "api/v1/jobs/<str:jobId>/kill": api("POST", POST={"reason": "owned"}),
    "api/v1/jobs/<str:jobId>/retry": api("POST", POST={}),
    "api/v1/spaces/<str:spaceId>/schedules": api(
        "GET",
        "POST",
        POST={"name": "a-sneaks-in", "cron": "@hourly", "jobTemplate": {"name": "x"}},
    ),
    "api/v1/spaces/<str:spaceId>/schedules/<str:name>": api(
        "GET", "PATCH", "DELETE", PATCH={"cron": "@hourly"}
    ),
    "api/v1/spaces/<str:spaceId>/schedules/<str:name>/pause": api("POST", POST={}),
    "api/v1/spaces/<str:spaceId>/schedules/<str:name>/resume": api("POST", POST={}),
    "api/v1/spaces/<str:spaceId>/schedules/<str:name>/trigger": api("POST", POST={}),
    # --- operations ---
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": PUBLIC,
    # --- accounts ---
    "accounts/login/": PUBLIC,
    "accounts/logout/": Case("public", ("POST",)),
    "accounts/password_change/": PUBLIC,
    "accounts/password_change/done/": PUBLIC,
    "accounts/signup/": PUBLIC,
    # --- dashboard ---
    "": PUBLIC,
    "organizations/new/": PUBLIC,
    "orgs/<slug:slug>/": DASHBOARD,
    "orgs/<slug:slug>/switch/": DASHBOARD,
    "orgs/<slug:slug>/members/": DASHBOARD,
    "orgs/<slug:slug>/members/<int:membership_id>/role/": DASHBOARD,
    "orgs/<slug:slug>/members/<int:membership_id>/remove/": DASHBOARD,
    "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/": DASHBOARD,
    # charlie's own invitations only; B's pending invitation (to dana) is not his to answer.
    "invitations/": PUBLIC,
    "invitations/<str:token>/accept/": DASHBOARD,
    "invitations/<str:token>/decline/": DASHBOARD,
    "spaces/<str:public_id>/": DASHBOARD,
    "spaces/<str:public_id>/chart.json": DASHBOARD,
    "spaces/<str:public_id>/counts.json": DASHBOARD,
    "spaces/<str:public_id>/jobs/bulk/": DASHBOARD,
    "spaces/<str:public_id>/jobs/<str:job_id>": DASHBOARD,
    "spaces/<str:public_id>/jobs/<str:job_id>/kill": DASHBOARD,
    "spaces/<str:public_id>/jobs/<str:job_id>/retry": DASHBOARD,
    "spaces/<str:public_id>/jobs/<str:job_id>/logs": DASHBOARD,
    "spaces/<str:public_id>/tokens/": DASHBOARD,
    "spaces/<str:public_id>/tokens/<int:key_id>/revoke/": DASHBOARD,
    "spaces/<str:public_id>/schedules/": DASHBOARD,
    "spaces/<str:public_id>/schedules/<str:name>/": DASHBOARD,
    "spaces/<str:public_id>/schedules/<str:name>/pause/": DASHBOARD,
    "spaces/<str:public_id>/schedules/<str:name>/resume/": DASHBOARD,
    "spaces/<str:public_id>/schedules/<str:name>/trigger/": DASHBOARD,
    "spaces/<str:public_id>/schedules/<str:name>/delete/": DASHBOARD,
    "spaces/<str:public_id>/limits/": DASHBOARD,
    "spaces/<str:public_id>/workers/": DASHBOARD,
    "spaces/<str:public_id>/overview/": DASHBOARD,
    "spaces/<str:public_id>/errors/": DASHBOARD,
    "spaces/<str:public_id>/errors/<str:fingerprint>/": DASHBOARD,
    "spaces/<str:public_id>/settings/": DASHBOARD,
    "spaces/<str:public_id>/settings/test-slack/": DASHBOARD,
    "spaces/<str:public_id>/settings/test-push/": DASHBOARD,
    "spaces/<str:public_id>/settings/rotate-secret/": DASHBOARD,
    "spaces/<str:public_id>/pause/": DASHBOARD,
    "spaces/<str:public_id>/resume/": DASHBOARD,
    "spaces/<str:public_id>/delete/": DASHBOARD,
    # --- WebSockets (jobs/routing.py) ---
    "ws:^api/v1/realtime/spaces/(?P<space_id>[^/]+)/?$": WS,
    "ws:^api/v1/realtime/(?P<job_id>[^/]+)/?$": WS,
    "ws:": WS,
}

# Admin: every registered model's six routes, attacked with B's object where there is one.
# A new ModelAdmin adds routes that are missing here until its model is listed.
ADMIN_OBJECTS = [
    "auth/group",
    "auth/user",
    "orgs/organization",
    "orgs/membership",
    "orgs/invitation",
    "spaces/space",
    "spaces/apikey",
    "jobs/job",
    "jobs/jobevent",
    "jobs/joblog",
    "notifications/notificationdelivery",
    "notifications/pendingnotification",
    "notifications/endpointbreaker",
    "notifications/spacechannels",
    "schedules/schedule",
]
ADMIN_SITE_ROUTES = {
    "admin/": "admin/",
    "admin/login/": None,  # the login form itself; checked for B's data only
    "admin/logout/": None,
    "admin/password_change/": "admin/password_change/",
    "admin/password_change/done/": "admin/password_change/done/",
    "admin/autocomplete/": "admin/autocomplete/",
    "admin/jsi18n/": None,
    "admin/r/<path:content_type_id>/<path:object_id>/": "admin/r/{ct}/{space_pk}/",
    "admin/auth/user/<id>/password/": "admin/auth/user/{alice_pk}/password/",
    "admin/^(?P<app_label>auth|orgs|spaces|jobs|notifications|schedules)/$": "admin/spaces/",
    "admin/(?P<url>.*)$": "admin/no-such-page/",
}
ADMIN_SUFFIXES = ["", "add/", "<path:object_id>/history/", "<path:object_id>/delete/"]
ADMIN_SUFFIXES += ["<path:object_id>/change/", "<path:object_id>/"]


def admin_routes() -> set[str]:
    routes = set(ADMIN_SITE_ROUTES)
    for model in ADMIN_OBJECTS:
        routes |= {f"admin/{model}/{suffix}" for suffix in ADMIN_SUFFIXES}
    # The app_label pattern lists the apps with registered models.
    apps = "|".join(dict.fromkeys(m.split("/")[0] for m in ADMIN_OBJECTS))
    routes.discard("admin/^(?P<app_label>auth|orgs|spaces|jobs|notifications|schedules)/$")
    routes.add(f"admin/^(?P<app_label>{apps})/$")
    return routes


def http_routes(patterns=None, prefix: str = "") -> list[tuple[str, URLPattern]]:
    """Every HTTP route as (full pattern text, URLPattern), includes recursed."""
    found: list[tuple[str, URLPattern]] = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            found += http_routes(entry.url_patterns, prefix + str(entry.pattern))
        else:
            found.append((prefix + str(entry.pattern), entry))
    return found


def ws_routes() -> list[str]:
    return [f"ws:{entry.pattern}" for entry in websocket_urlpatterns]


def test_every_route_is_in_the_matrix():
    enumerated = {route for route, _ in http_routes()} | set(ws_routes())
    known = set(ROUTES) | admin_routes()
    missing = sorted(enumerated - known)
    stale = sorted(known - enumerated)
    assert not missing, f"routes with no isolation case: add them to ROUTES: {missing}"
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


def view_methods(pattern: URLPattern) -> set[str]:
    view_class = getattr(pattern.callback, "cls", None) or getattr(
        pattern.callback, "view_class", None
    )
    if view_class is None:
        return set()
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}


def test_the_matrix_lists_every_method_of_every_api_view():
    for route, pattern in http_routes():
        case = ROUTES.get(route)
        if case is None or not case.kind.startswith("api"):
            continue
        assert view_methods(pattern) == set(case.methods), route


# --- path building ---------------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def fill(route: str, values: dict[str, Any]) -> str:
    def sub(match: re.Match) -> str:
        return str(values[match.group(1)])

    return "/" + _CONVERTER.sub(sub, route)


def values_for(t: Tenants) -> dict[str, Any]:
    return {
        "spaceId": t.space_b.public_id,
        "space_id": t.space_b.public_id,
        "public_id": t.space_b.public_id,
        "jobId": t.job_b.id,
        "job_id": t.job_b.id,
        "name": t.schedule_b.name,
        "slug": t.cast.org.slug,
        "membership_id": t.membership_b.pk,
        "key_id": t.key_b_row.pk,
        "invitation_id": t.invitation_b.pk,
        "token": t.invitation_b.token,
        "fingerprint": t.job_b.error_fingerprint or "0123456789abcdef",
        # A group of B's (jobs/groups.py).
        "groupId": JobGroup.objects.get_or_create(space=t.space_b, name="b.group", total=1)[0].pk,
    }


def body_for(case: Case, method: str, t: Tenants) -> Any:
    body = case.bodies.get(method)
    if isinstance(body, dict):
        return {k: (t.claim_b if v == "{claim}" else v) for k, v in body.items()}
    return body


def b_state(t: Tenants) -> tuple:
    job = Job.objects.get(pk=t.job_b.pk)
    schedule = Schedule.objects.filter(pk=t.schedule_b.pk).values().first()
    return (
        job.status,
        job.claim_id,
        job.progress,
        job.result,
        JobEvent.objects.filter(job=job).count(),
        Job.objects.filter(space=t.space_b).count(),
        schedule,
        t.space_b.__class__.objects.filter(pk=t.space_b.pk).values("paused_at", "name").get(),
        list(Invitation.objects.filter(pk=t.invitation_b.pk).values("status", "user", "role")),
        sorted(Membership.objects.filter(organization=t.cast.org).values_list("user", "role")),
    )


def assert_no_b_data(t: Tenants, body: bytes, route: str, *, job_id_too: bool) -> None:
    text = body.decode("utf-8", "replace")
    for marker in t.markers:
        assert marker not in text, f"{route}: B's data ({marker}) in the answer"
    if job_id_too:
        assert t.job_b.id not in text, f"{route}: B's job id in the answer"


@pytest.fixture
def tenants(tenants):
    """The shared tenants, plus a pending invitation of B's org to someone who is not charlie."""
    tenants.invitation_b = Invitation.objects.create(
        organization=tenants.cast.org,
        invited_by=tenants.cast.alice,
        invitee="dana@example.com",
        email="dana@example.com",
        role=Membership.Role.ADMIN,
    )
    return tenants


def cases(kind: str) -> list[str]:
    return [route for route, case in ROUTES.items() if case.kind == kind]


# --- API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", cases("api"))
def test_a_key_of_space_a_gets_nothing_of_space_b(route, tenants, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenants.key_a}")
    path = fill(route, values_for(tenants))
    before = b_state(tenants)
    for method in ROUTES[route].methods:
        body = body_for(ROUTES[route], method, tenants)
        response = getattr(client, method.lower())(path, body, format="json")
        assert response.status_code in (403, 404), (route, method, response.content)
        assert response["Content-Type"].startswith("application/json"), (route, method)
        # The job id is in the path of most routes, and may be echoed in the error.
        assert_no_b_data(
            tenants, response.content, f"{method} {route}", job_id_too="job" not in route
        )
    assert b_state(tenants) == before, f"{route}: B's objects changed"


@pytest.mark.parametrize("route", cases("api-batch"))
def test_batch_calls_treat_b_jobs_as_not_found(route, tenants, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenants.key_a}")
    before = b_state(tenants)
    item = {"id": tenants.job_b.id, "claimId": tenants.claim_b, "result": {}, "error": "owned"}
    response = client.post(f"/{route}", [item], format="json")
    # Batches answer per item: the call succeeds, the item does not.
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert result["ok"] is False
    assert result["code"] == "not_found"
    assert_no_b_data(tenants, response.content, route, job_id_too=False)
    assert b_state(tenants) == before


def test_the_key_of_b_does_reach_b(tenants, settings):
    """The control: the same requests with B's own key succeed, so the 404s above are tenancy."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenants.key_b}")
    values = values_for(tenants)
    for route in [
        "api/v1/jobs/<str:jobId>",
        "api/v1/spaces/<str:spaceId>/jobs",
        "api/v1/spaces/<str:spaceId>/schedules/<str:name>",
    ]:
        response = client.get(fill(route, values))
        assert response.status_code == 200, route
    assert JOB_MARKER in client.get(fill("api/v1/jobs/<str:jobId>", values)).content.decode()


def test_a_key_from_another_space_is_refused_without_any_key_too(tenants):
    """No credentials at all: 401 on every tenant route, never B's data."""
    client = APIClient()
    values = values_for(tenants)
    for route in cases("api") + cases("api-batch"):
        for method in ROUTES[route].methods:
            response = getattr(client, method.lower())(fill(route, values), {}, format="json")
            assert response.status_code == 401, (route, method)
            assert_no_b_data(tenants, response.content, route, job_id_too=False)


# --- dashboard -------------------------------------------------------------------------------


@pytest.mark.parametrize("route", cases("dashboard"))
def test_an_outsider_gets_404_on_every_page_of_b(route, tenants):
    charlie = Client()
    charlie.force_login(tenants.cast.charlie)
    path = fill(route, values_for(tenants))
    before = b_state(tenants)
    codes = set()
    for method in ROUTES[route].methods:
        response = getattr(charlie, method.lower())(path)
        # 405: the view does not serve that method at all (POST-only actions).
        assert response.status_code in (404, 405), (route, method, response.status_code)
        assert_no_b_data(tenants, response.content, route, job_id_too=False)
        codes.add(response.status_code)
    assert 404 in codes, route
    assert b_state(tenants) == before
    assert tenants.membership_b.__class__.objects.filter(pk=tenants.membership_b.pk).exists()
    assert tenants.key_b_row.__class__.objects.get(pk=tenants.key_b_row.pk).revoked_at is None


@pytest.mark.parametrize("route", cases("dashboard"))
def test_anonymous_visitors_are_sent_to_the_login_page(route, tenants):
    path = fill(route, values_for(tenants))
    before = b_state(tenants)
    for method in ROUTES[route].methods:
        response = getattr(Client(), method.lower())(path)
        if response.status_code == 405:
            continue
        assert response.status_code == 302, (route, method)
        assert response["Location"].startswith("/accounts/login/"), (route, response["Location"])
    assert b_state(tenants) == before


@pytest.mark.parametrize("route", cases("dashboard"))
def test_an_api_key_does_not_open_the_dashboard(route, tenants):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenants.key_b}")
    response = client.get(fill(route, values_for(tenants)))
    assert response.status_code == 302, route


@pytest.mark.parametrize("route", cases("public"))
def test_pages_without_a_tenant_never_show_b_to_an_outsider(route, tenants):
    charlie = Client()
    charlie.force_login(tenants.cast.charlie)
    path = fill(route, values_for(tenants))
    for client in (charlie, Client()):
        for method in ROUTES[route].methods:
            response = getattr(client, method.lower())(path, follow=True)
            assert response.status_code < 500, (route, method)
            assert_no_b_data(tenants, response.content, route, job_id_too=True)
            assert tenants.cast.org.name.encode() not in response.content, route


# --- admin -----------------------------------------------------------------------------------


def admin_paths(t: Tenants) -> list[str]:
    from django.contrib.contenttypes.models import ContentType

    objects = {
        "auth/user": t.cast.alice.pk,
        "orgs/organization": t.cast.org.pk,
        "orgs/membership": t.membership_b.pk,
        "orgs/invitation": t.invitation_b.pk,
        "spaces/space": t.space_b.pk,
        "spaces/apikey": t.key_b_row.pk,
        "notifications/spacechannels": t.space_b.pk,  # keyed by its space
        "jobs/job": t.job_b.pk,
        "jobs/jobevent": JobEvent.objects.filter(job=t.job_b).values_list("pk", flat=True)[0],
        "schedules/schedule": t.schedule_b.pk,
    }
    paths = []
    for model in ADMIN_OBJECTS:
        pk = objects.get(model, 1)
        for suffix in ADMIN_SUFFIXES:
            paths.append("/admin/" + model + "/" + suffix.replace("<path:object_id>", str(pk)))
    values = {
        "ct": ContentType.objects.get(app_label="spaces", model="space").pk,
        "space_pk": t.space_b.pk,
        "alice_pk": t.cast.alice.pk,
    }
    for target in ADMIN_SITE_ROUTES.values():
        if target is not None:
            paths.append("/" + target.format(**values))
    return paths


def test_non_staff_users_and_keys_never_get_into_the_admin(tenants):
    charlie = Client()
    charlie.force_login(tenants.cast.charlie)
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {tenants.key_b}")
    before = b_state(tenants)
    for path in admin_paths(tenants):
        for client in (charlie, keyed, Client()):
            for method in ("get", "post"):
                response = getattr(client, method)(path)
                assert response.status_code == 302, (path, method, response.status_code)
                assert response["Location"].startswith("/admin/login/"), path
    for path in ("/admin/login/", "/admin/jsi18n/"):
        response = charlie.get(path)
        assert_no_b_data(tenants, response.content, path, job_id_too=True)
    assert b_state(tenants) == before


# --- WebSockets ------------------------------------------------------------------------------


@pytest.fixture
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    streams.resume_fan_out()


async def close_code(path: str, headers=None) -> tuple[int, list[dict]]:
    from config.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await comm.connect()
    assert connected
    received = []
    while True:
        message = await comm.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            await comm.wait()
            return message["code"], received
        received.append(message)


def _ws_cases(t: Tenants) -> list[tuple[str, int]]:
    return [
        (f"/api/v1/realtime/spaces/{t.space_b.public_id}?token={t.key_a}", 4403),
        (f"/api/v1/realtime/{t.job_b.id}?token={t.key_a}", 4403),
        (f"/api/v1/realtime/0000000000000000000000NOPE?token={t.key_a}", 4404),
        (f"/api/v1/realtime/spaces/{t.space_b.public_id}?token=emit_bogus", 4401),
        (f"/api/v1/realtime/{t.job_b.id}?token=emit_bogus", 4401),
        (f"/api/v1/realtime/elsewhere/{t.job_b.id}?token={t.key_a}", 4404),
    ]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_key_of_a_is_closed_on_b_streams(in_memory_layer, tenants):
    t = tenants
    try:
        for path, expected in _ws_cases(t):
            code, received = await close_code(path)
            assert code == expected, (path, code)
            for message in received:
                assert_no_b_data(t, message.get("text", "").encode(), path, job_id_too=False)
        # The control: B's key on the same stream is accepted and sees the job.
        from config.asgi import application

        comm = WebsocketCommunicator(application, f"/api/v1/realtime/{t.job_b.id}?token={t.key_b}")
        assert (await comm.connect())[0]
        init = await comm.receive_json_from(timeout=5)
        assert init["type"] == "init" and init["jobId"] == t.job_b.id
        await comm.disconnect()
        # Charlie's browser session (right Origin) on B's space stream: not a member.
        session = Client()
        await database_sync_to_async(session.force_login)(t.cast.charlie)
        headers = [
            (b"cookie", f"sessionid={session.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://testserver"),
        ]
        code, _ = await close_code(f"/api/v1/realtime/spaces/{t.space_b.public_id}", headers)
        assert code == 4403
    finally:
        await database_sync_to_async(connections.close_all)()
