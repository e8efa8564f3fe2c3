"""A ready demo: user, org "demo", space "default" and a worker token. Safe to run again.

The token stays the same across runs of one install: its clear value is kept in
VAR_DIR/demo_token (readable by the owner only), so a worker left running across a restart of
`make run` keeps working. A new one is issued only when that file is missing, or its key was
revoked or lacks a scope the demo needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from lib.commands import CheckedCommand
from orgs.models import Membership, Organization
from spaces import keys, scopes
from spaces.models import ApiKey, Space

DEMO_USER = "demo"
DEMO_ORG = "demo"
DEMO_SPACE = "default"
WORKER_TOKEN_NAME = "demo worker"  # noqa: S105 - a label, not a secret
# Everything the README's tour, worker and producer examples call, retry and kill included.
DEMO_SCOPES = [*scopes.WORKER_PRESET, scopes.CREATE, scopes.KILL, scopes.RETRY, scopes.READ]


def token_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_token"


def kept_token(space: Space) -> str | None:
    """The clear demo token saved by an earlier run, if its key is still active with every
    demo scope."""
    try:
        clear = token_file().read_text().strip()
    except OSError:
        return None
    row = space.api_keys.filter(
        name=WORKER_TOKEN_NAME, revoked_at__isnull=True, digest=keys.digest(clear)
    ).first()
    if row is None or not set(DEMO_SCOPES) <= set(row.scopes):
        return None
    return clear


def keep_token(clear: str) -> None:
    path = token_file()
    path.write_text(clear + "\n")
    path.chmod(0o600)


class Command(CheckedCommand):
    help = "Create (once) a demo user, organization, space and worker token, and print them."

    def handle(self, *args, **options) -> None:
        password = os.environ.get("BOOTSTRAP_PASSWORD", "demo")
        with transaction.atomic():
            user, created_user = get_user_model().objects.get_or_create(
                username=DEMO_USER,
                defaults={"email": "demo@example.com", "is_staff": True, "is_superuser": True},
            )
            if created_user:
                user.set_password(password)
                user.save()
            org, _ = Organization.objects.get_or_create(slug=DEMO_ORG, defaults={"name": "Demo"})
            Membership.objects.get_or_create(
                organization=org, user=user, defaults={"role": Membership.Role.OWNER}
            )
            space = Space.objects.filter(organization=org, name=DEMO_SPACE).first()
            if space is None:
                space = Space.create(org, DEMO_SPACE)
            token = kept_token(space)
            if token is None:
                # A fresh one replaces any other demo token, so what is printed always works.
                space.api_keys.filter(name=WORKER_TOKEN_NAME, revoked_at__isnull=True).update(
                    revoked_at=timezone.now()
                )
                _, token = ApiKey.issue(space, WORKER_TOKEN_NAME, DEMO_SCOPES)
                keep_token(token)

        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Dashboard:  {settings.PUBLIC_URL}/",
                    f"Admin:      {settings.PUBLIC_URL}/admin/",
                    f"Login:      {DEMO_USER} / {password if created_user else '(unchanged)'}",
                    f"Space:      {space.name} ({space.public_id})",
                    f"Token:      {token}",
                    f"Progress:   {space.public_progress_key}  (public, progress only)",
                    "",
                    "Try it:",
                    f"  export SPACE={space.public_id} TOKEN={token}",
                    f"  curl -s -X POST {settings.PUBLIC_URL}/api/v1/spaces/$SPACE/jobs "
                    "-H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                    '-d \'{"name": "hello", "payload": {"n": 1}}\'',
                    "",
                ]
            )
        )
