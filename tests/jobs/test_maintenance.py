from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from jobs import maintenance, services

ROOT = Path(__file__).resolve().parents[2]


def test_registered_tasks_run_when_due_and_a_failing_one_does_not_stop_the_others(monkeypatch):
    monkeypatch.setattr(maintenance, "steps", {})
    calls = []
    maintenance.register("ok", lambda: calls.append("ok") or 1, every=1.0)

    def broken():
        raise RuntimeError("boom")

    maintenance.register("broken", broken, every=1.0)
    results = maintenance.run_due(now=100.0)
    assert results["ok"] == 1 and isinstance(results["broken"], RuntimeError)
    assert maintenance.run_due(now=100.5) == {}
    assert set(maintenance.run_due(now=101.0)) == {"ok", "broken"}
    assert calls == ["ok", "ok"]


def test_staging_and_rescue_are_separate_steps_every_half_second():
    stage, rescue = maintenance.steps["jobs.stage"], maintenance.steps["jobs.rescue"]
    assert (stage.func, stage.every) == (services.stage_due, 0.5)
    assert (rescue.func, rescue.every) == (services.rescue_expired, 0.5)


def test_every_app_s_step_is_registered_once_by_the_wiring():
    from schedules import services as schedules

    assert set(maintenance.steps) == {
        "jobs.stage",
        "jobs.rescue",
        "jobs.sequence_stragglers",
        "jobs.retention",
        "jobs.roll_up",
        "jobs.prune_rollups",
        "jobs.repair_blocked",
        "jobs.repair_groups",
        "schedules.tick",
        "notifications.flush_outbox",
        "notifications.prune_breakers",
    }
    assert maintenance.steps["schedules.tick"].func is schedules.tick


def test_run_scheduler_stops_cleanly_on_sigterm(tmp_path):
    env = os.environ | {"VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert "scheduler running" in first
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "scheduler stopped" in out
