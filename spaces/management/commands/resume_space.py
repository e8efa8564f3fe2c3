"""Resume a paused space: jobs are handed out again and push receivers are woken."""

from __future__ import annotations

from lib.commands import CheckedCommand
from spaces.lookup import space_by_id_or_name
from spaces.services import resume_space


class Command(CheckedCommand):
    help = "Resume a paused space (see pause_space)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("space", help="space public id or name")
        parser.add_argument("--org", help="organization slug, when several spaces share a name")

    def handle(self, *args, **options) -> None:
        space = space_by_id_or_name(options["space"], options["org"])
        if not space.is_paused:
            self.stdout.write(f"Space {space} ({space.public_id}) was not paused.")
            return
        resume_space(space)
        self.stdout.write(f"Resumed space {space} ({space.public_id}).")
