"""Pause a space: polls and claims hand out nothing until it is resumed; creation still works."""

from __future__ import annotations

from lib.commands import CheckedCommand
from spaces.lookup import space_by_id_or_name
from spaces.services import pause_space


class Command(CheckedCommand):
    help = "Pause a space (polls and claims return nothing, pushes are held). See resume_space."

    def add_arguments(self, parser) -> None:
        parser.add_argument("space", help="space public id or name")
        parser.add_argument("--org", help="organization slug, when several spaces share a name")

    def handle(self, *args, **options) -> None:
        space = space_by_id_or_name(options["space"], options["org"])
        if space.is_paused:
            self.stdout.write(f"Space {space} ({space.public_id}) was already paused.")
            return
        pause_space(space)
        self.stdout.write(f"Paused space {space} ({space.public_id}).")
