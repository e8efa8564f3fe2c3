"""Issue an API key for a space (creating the space when none has that name)."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import transaction

from lib.commands import CheckedCommand
from orgs.models import Organization
from spaces import scopes
from spaces.models import ApiKey, Space


class Command(CheckedCommand):
    help = (
        "Issue an API key. Prints the key once; with --json the last line is "
        '{"spaceId": ..., "token": ...}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--space", required=True, help="space public id or name")
        parser.add_argument(
            "--scopes", default=",".join(scopes.WORKER_PRESET), help="comma-separated scopes"
        )
        parser.add_argument("--name", default="cli token", help="a name for the key")
        parser.add_argument("--org", default="demo", help="organization slug (default: demo)")
        parser.add_argument("--json", action="store_true", help="print JSON on the last line")

    def handle(self, *args, **options) -> None:
        scope_list = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        if not scope_list:
            raise CommandError("--scopes needs at least one scope")
        bad = scopes.unknown(scope_list)
        if bad:
            raise CommandError(
                f"Unknown scopes: {', '.join(bad)}. Known: {', '.join(sorted(scopes.ALL))}"
            )

        with transaction.atomic():
            space = Space.objects.filter(public_id=options["space"]).first()
            if space is None:
                org = Organization.objects.filter(slug=options["org"]).first()
                if org is None:
                    if options["org"] != "demo":
                        raise CommandError(f"No organization with slug {options['org']!r}")
                    org = Organization.objects.create(name="Demo", slug="demo")
                space = Space.objects.filter(organization=org, name=options["space"]).first()
                if space is None:
                    space = Space.create(org, options["space"])
            _, token = ApiKey.issue(space, options["name"], scope_list)

        if options["json"]:
            self.stdout.write(json.dumps({"spaceId": space.public_id, "token": token}))
        else:
            self.stdout.write(f"Space {space} ({space.public_id})\nToken {token}\n(shown once)")
