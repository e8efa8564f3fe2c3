"""Bench-only settings: production, plus the bench URLconf (bench/urls.py).

bench/run.py points DJANGO_SETTINGS_MODULE here for the processes it starts (they run with the
repository root as their working directory, so `bench` imports as a namespace package). The
service itself never uses this module.
"""

from config.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
