"""`python manage.py run_scheduler`: deadlines, scheduled jobs and every registered periodic task.

Runs until SIGTERM or SIGINT, finishing the task in hand before it exits.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from jobs import scheduler


class Command(BaseCommand):
    help = "Run the sweeper (deadlines, scheduled jobs) and the registered periodic tasks."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="run every task once and exit (for cron or tests)"
        )

    def handle(self, *args, once: bool = False, **options) -> None:
        if once:
            for name, result in scheduler.run_due().items():
                self.stdout.write(f"{name}: {result!r}")
            return
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write("scheduler running; SIGTERM stops it")
        scheduler.run_forever(stop)
        self.stdout.write("scheduler stopped")
