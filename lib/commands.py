"""The base of the project's management commands: arguments are checked like API input.

A command line can carry what no API body may: bytes that are not UTF-8 arrive in Python as
lone surrogates (U+DC80..U+DCFF), which the database refuses with a traceback. Every string
argument goes through lib/jsonsafe's check first and a bad one is a CommandError that names it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from . import jsonsafe


class CheckedCommand(BaseCommand):
    def execute(self, *args, **options):
        for name, value in [(None, args), *options.items()]:
            if isinstance(value, str | list | tuple):
                found = jsonsafe.problem(list(value) if isinstance(value, tuple) else value)
                if found:
                    where = "an argument" if name is None else "--" + name.replace("_", "-")
                    raise CommandError(f"{where}: {found} (is the terminal's encoding UTF-8?)")
        return super().execute(*args, **options)
