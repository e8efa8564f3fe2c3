"""No secret at rest or in logs.

Secrets: clear API keys (created through the dashboard and the model), push header values and
the token part of a Slack webhook URL (set through the dashboard settings page), and the
callback header values of a job. After a session of API and dashboard calls with DEBUG logging
on every logger, in text and JSON format, none of them may be in the captured logs; the clear
keys may not be anywhere in the database either.

The push signing secret (SpaceChannels.push_secret) is encrypted at rest too, but the dashboard shows
it to members by design, so it is not one of the secrets checked in the logs.
"""

from __future__ import annotations

import io
import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from config.logging import JsonFormatter
from jobs import services
from lib import crypto
from spaces import scopes
from spaces.models import ApiKey
from tests.factories import issue_key, stored_channels

HEADER_SECRET = "hdr-secret-2f9c81d7e4"
SLACK_TOKEN = "XoxbSlackToken7Qm3Zr9"
SLACK_URL = f"https://hooks.slack.com/services/T0001/B0002/{SLACK_TOKEN}"
CALLBACK_SECRET = "cb-secret-5a1b9e33"


@pytest.fixture
def all_logs(caplog):
    """DEBUG on the root logger, captured as text and as JSON lines."""
    text, stream = io.StringIO(), io.StringIO()
    text_handler = logging.StreamHandler(text)
    text_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in (text_handler, handler):
        h.setLevel(logging.DEBUG)
        root.addHandler(h)
    caplog.set_level(logging.DEBUG)  # root logger
    # Named loggers with their own level (jobyard.request, django.request ...) too.
    changed = []
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG:
            changed.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
    # caplog's own text covers the call phase only; the session runs in setup.
    yield lambda: text.getvalue() + "\n" + caplog.text + "\n" + stream.getvalue()
    root.removeHandler(handler)
    root.removeHandler(text_handler)
    for logger, level in changed:
        logger.setLevel(level)


@pytest.fixture
def session(cast, all_logs, settings):
    """Keys and settings with secrets, then a round of API and dashboard calls."""
    settings.API_RATE_LIMIT_PER_SECOND = 100_000
    settings.LOG_FORMAT = "json"
    space = cast.space
    alice = Client()
    alice.force_login(cast.alice)
    base = f"/spaces/{space.public_id}"

    # A key created in the dashboard: its clear value is in that one page only.
    page = alice.post(f"{base}/tokens/", {"name": "dash key", "worker_preset": "on"})
    assert page.status_code == 200
    dash_key = re.search(rb"emit_[A-Za-z0-9_-]{20,}", page.content).group().decode()
    model_key = issue_key(space, sorted(scopes.ALL), name="model key")

    response = alice.post(f"{base}/settings/", {"form": "slack", "slack_webhook_url": SLACK_URL})
    assert response.status_code in (200, 302)
    response = alice.post(
        f"{base}/settings/",
        {
            "form": "push",
            "push_url": "https://push.example.com/hook",
            "push_headers": f"Authorization: Bearer {HEADER_SECRET}\nX-Other: {HEADER_SECRET}x",
        },
    )
    assert response.status_code in (200, 302)
    channels = stored_channels(space)
    assert channels.slack_webhook_url == SLACK_URL, "the Slack setting was not saved"
    assert channels.push_headers.get("Authorization") == f"Bearer {HEADER_SECRET}"

    for clear, header in ((model_key, "HTTP_AUTHORIZATION"), (dash_key, "HTTP_X_API_KEY")):
        value = f"Bearer {clear}" if header == "HTTP_AUTHORIZATION" else clear
        client = APIClient(**{header: value})
        created = client.post(
            f"/api/v1/spaces/{space.public_id}/jobs",
            {
                "name": "secret.job",
                "callbackUrl": "https://cb.example.com/done",
                "callbackHeaders": {"X-Callback-Token": CALLBACK_SECRET},
            },
            format="json",
        )
        if created.status_code == 201:
            job_id = created.json()["id"]
            assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
        client.post(f"/api/v1/spaces/{space.public_id}/jobs/poll", {}, format="json")
        # A wrong key too: refusals are logged.
        APIClient(HTTP_AUTHORIZATION=f"Bearer {clear[:-3]}zzz").get(
            f"/api/v1/spaces/{space.public_id}/jobs"
        )
    # The stream token travels in the query string: never logged with it.
    Client().get(f"/api/v1/realtime/{space.public_id}?token={model_key}")
    alice.get(f"{base}/settings/")
    alice.get(f"{base}/tokens/")
    services.sweep()
    return {"keys": [model_key, dash_key], "logs": all_logs, "space": space}


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def test_logs_hold_no_key_header_value_or_slack_token(session):
    logs = session["logs"]()
    # Both captures saw the request log, so the test is not blind.
    assert '"logger": "jobyard.request"' in logs, "no JSON request log lines"
    assert "jobyard.request" in logs.split('{"ts"')[0], "no text log lines"
    assert leaks(logs, session["keys"] + [HEADER_SECRET, SLACK_TOKEN, CALLBACK_SECRET]) == []


def database_dump() -> str:
    """Every row of every table, as text (a raw SELECT, so nothing the ORM hides is missed)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                parts.append(repr(row))
    return "\n".join(parts)


def test_the_database_holds_no_clear_key(session):
    dump = database_dump()
    assert session["space"].public_id in dump, "the dump is blind"
    assert leaks(dump, session["keys"]) == []


def test_the_database_holds_no_header_value_slack_token_or_signing_secret(session):
    from jobs.models import Job

    space = session["space"]
    # The control: the job with the callback header was stored, and reads back in clear.
    job = Job.objects.filter(space=space, name="secret.job").first()
    assert job is not None and job.callback_headers == {"X-Callback-Token": CALLBACK_SECRET}
    dump = database_dump()
    # The control: the channel settings' table was dumped, its secrets as they are stored.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT slack_webhook_url, push_headers, push_secret "
            "FROM notifications_spacechannels WHERE space_id = %s",
            [space.pk],
        )
        stored = cursor.fetchone()
    assert all(value.startswith(crypto.PREFIX) and value in dump for value in stored)
    secrets = [HEADER_SECRET, SLACK_TOKEN, CALLBACK_SECRET, stored_channels(space).push_secret]
    assert leaks(dump, secrets) == []


def test_admin_pages_of_space_and_key_show_no_secret(session, db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    space = session["space"]
    key = ApiKey.objects.filter(space=space, name="model key").get()
    pages = [
        "/admin/spaces/space/",
        f"/admin/spaces/space/{space.pk}/change/",
        "/admin/notifications/spacechannels/",
        f"/admin/notifications/spacechannels/{space.pk}/change/",
        "/admin/spaces/apikey/",
        f"/admin/spaces/apikey/{key.pk}/change/",
        "/admin/jobs/job/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        assert leaks(body, session["keys"] + [HEADER_SECRET, SLACK_TOKEN]) == [], page
        assert key.digest not in body, page
    # The control: the admin does show the space, so the page is not empty.
    assert space.name in client.get(f"/admin/spaces/space/{space.pk}/change/").content.decode()
