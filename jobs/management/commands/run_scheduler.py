"""`python manage.py run_scheduler`: the maintenance loop (jobs/maintenance.py) and its steps.

Runs until SIGTERM or SIGINT, finishing the task in hand before it exits.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from jobs import maintenance


class Command(BaseCommand):
    help = "Run the maintenance steps: staging, rescue, retention, schedules, the outbox."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="run every step once and exit (for cron or tests)"
        )

    def handle(self, *args, once: bool = False, **options) -> None:
        if once:
            for name, result in maintenance.run_due().items():
                self.stdout.write(f"{name}: {result!r}")
            return
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write("scheduler running; SIGTERM stops it")
        maintenance.run_forever(stop)
        self.stdout.write("scheduler stopped")
