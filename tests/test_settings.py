import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _settings(
    env: dict, expr: str, module: str = "config.settings.local"
) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "DEBUG",
            "OUTBOUND_ALLOW_PRIVATE",
        }
    }
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = module
    code = f"import django; django.setup(); from django.conf import settings as s; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_with_no_variables_it_runs_on_sqlite_and_the_in_memory_layer(tmp_path):
    out = _settings(
        {"VAR_DIR": str(tmp_path)},
        "s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL",
    )
    assert out.returncode == 0, out.stderr
    assert "sqlite3" in out.stdout
    assert "InMemoryChannelLayer" in out.stdout
    assert "filesystem://" in out.stdout


def test_database_and_redis_urls_switch_to_postgres_and_redis(tmp_path):
    out = _settings(
        {
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
        "s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL",
    )
    assert out.returncode == 0, out.stderr
    assert "lib.postgres" in out.stdout  # Django's PostgreSQL backend with its pool check
    assert "RedisChannelLayer" in out.stdout
    assert "redis://127.0.0.1:6379/3" in out.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_HOSTS": "example.com"}, "SECRET_KEY"),
        ({"SECRET_KEY": "k" * 60}, "ALLOWED_HOSTS"),
        (
            {"SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "example.com", "OUTBOUND_ALLOW_PRIVATE": "1"},
            "OUTBOUND_ALLOW_PRIVATE",
        ),
    ],
)
def test_production_refuses_to_start_without_its_secrets(tmp_path, env, message):
    out = _settings(
        {"VAR_DIR": str(tmp_path), **env}, "s.DEBUG", module="config.settings.production"
    )
    assert out.returncode != 0
    assert message in out.stderr


def test_a_malformed_boolean_fails_loudly(tmp_path):
    out = _settings({"VAR_DIR": str(tmp_path), "DEBUG": "ture"}, "s.DEBUG")
    assert out.returncode != 0
    assert "not a boolean" in out.stderr


def test_production_passes_check_deploy(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": "a-production-secret-key-that-is-long-enough-0123456789-abcdefghijkl",
            "ALLOWED_HOSTS": "jobs.example.com",
            "VAR_DIR": str(tmp_path),
        }
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
