"""What the per-space seq numbering costs: transitions per second with and without it.

    python bench/stream_sequencing.py [--threads 1,4,8] [--ops 300]

Needs PostgreSQL (BENCH_PG_ADMIN_URL, default the local server); creates and drops its own
database (jobyard_bench_streams). Every thread reports progress on its own running job, all in
ONE space: the worst case for the space-row lock the numbering takes. Three modes:

- off:      the streams receiver disconnected (events stored, never numbered nor sent);
- sequence: numbering and counts, fan-out skipped;
- redis:    numbering plus fan-out to channels-redis (BENCH_REDIS_URL), as in production.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BENCH_DB = "jobyard_bench_streams"


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATABASE_URL"] = urlsplit(PG_ADMIN_URL)._replace(path=f"/{BENCH_DB}").geturl()
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def running_jobs(space, n: int) -> list:
    from jobs import services

    for _ in range(n):
        services.create_job(space, {"name": "bench"})
    polled = services.poll_jobs(space, count=n, ack=True)
    assert len(polled) == n
    return polled


def run(space, threads: int, ops: int) -> float:
    """Transitions per second over THREADS threads doing OPS progress reports each."""
    from django.db import connection

    from jobs import services

    jobs = running_jobs(space, threads)
    start = threading.Barrier(threads + 1)
    done: list[float] = []

    def work(job) -> None:
        start.wait()
        for i in range(ops):
            services.report_progress(job, i % 100, "step")
        done.append(time.perf_counter())
        connection.close()

    workers = [threading.Thread(target=work, args=(job,)) for job in jobs]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    return threads * ops / (max(done) - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,4,8")
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    admin(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    admin(f"CREATE DATABASE {BENCH_DB}")
    try:
        setup_django()
        from django.db import connection

        from jobs import events, streams
        from jobs.models import JobEvent
        from orgs.models import Organization
        from spaces.models import Space

        org = Organization.objects.create(name="bench")
        real_fan_out = streams.fan_out
        # Time every numbering transaction (lock wait included).
        numbering: list[float] = []
        real_sequence = streams.sequence_space

        def timed_sequence(space_id, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real_sequence(space_id, *args, **kwargs)
            finally:
                numbering.append(time.perf_counter() - t0)

        streams.sequence_space = timed_sequence
        modes = {
            "off": lambda: events.event_committed.disconnect(
                dispatch_uid="jobs.streams.on_events_committed"
            ),
            "sequence": lambda: setattr(streams, "fan_out", lambda messages: True),
            "redis": lambda: setattr(streams, "fan_out", real_fan_out),
        }
        print(
            f"{'threads':>7} {'mode':>9} {'transitions/s':>14} {'numbering ms p50/p95':>21}"
            f"  (median of {args.rounds} rounds)"
        )
        for threads in [int(t) for t in args.threads.split(",")]:
            for mode, prepare in modes.items():
                events.event_committed.connect(
                    streams.on_events_committed, dispatch_uid="jobs.streams.on_events_committed"
                )
                prepare()
                rates = []
                for r in range(args.rounds):
                    space = Space.create(org, f"s-{threads}-{mode}-{r}")
                    numbering.clear()
                    rates.append(run(space, threads, args.ops))
                    if mode != "off":
                        # Every event must be numbered, or the figure is meaningless.
                        pending = JobEvent.objects.filter(space=space, seq__isnull=True)
                        assert not pending.exists(), f"{pending.count()} events left unnumbered"
                timing = "-"
                if numbering:
                    ordered = sorted(numbering)
                    p50 = ordered[len(ordered) // 2] * 1000
                    p95 = ordered[int(len(ordered) * 0.95)] * 1000
                    timing = f"{p50:.1f} / {p95:.1f}"
                print(f"{threads:>7} {mode:>9} {statistics.median(rates):>14.0f} {timing:>21}")
        connection.close()
    finally:
        admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
