import os
import stat
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
            "SECRET_KEY_FILE",
            "SECRET_KEY_FALLBACKS",
            "FIELD_ENCRYPTION_KEYS",
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


def test_the_embedded_default_makes_a_key_for_the_install_and_keeps_it(tmp_path):
    expr = "s.SECRET_KEY, __import__('lib.crypto', fromlist=['_keys'])._keys()"
    first = _settings({"VAR_DIR": str(tmp_path)}, expr)
    second = _settings({"VAR_DIR": str(tmp_path)}, expr)

    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the settings' SECRET_KEY, and the only key secrets at rest are encrypted with
    assert first.stdout.strip() == f"{key} {(key,)!r}"
    assert second.stdout == first.stdout
    assert "insecure-local-only" not in first.stdout
    other = tmp_path / "other"
    other.mkdir()
    assert key not in _settings({"VAR_DIR": str(other)}, "s.SECRET_KEY").stdout


def test_a_secret_key_from_the_environment_wins_and_makes_no_key_file(tmp_path):
    out = _settings({"VAR_DIR": str(tmp_path), "SECRET_KEY": "e" * 60}, "s.SECRET_KEY")

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "e" * 60
    assert not (tmp_path / "secret_key").exists()


def test_production_without_a_secret_key_refuses_and_makes_no_key_file(tmp_path):
    out = _settings(
        {"VAR_DIR": str(tmp_path), "ALLOWED_HOSTS": "example.com"},
        "s.SECRET_KEY",
        module="config.settings.production",
    )

    assert out.returncode != 0
    assert "SECRET_KEY must be set" in out.stderr
    assert not (tmp_path / "secret_key").exists()


def test_a_key_file_that_cannot_be_read_stops_the_embedded_default(tmp_path):
    (tmp_path / "secret_key").mkdir()

    out = _settings({"VAR_DIR": str(tmp_path)}, "s.SECRET_KEY")

    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and str(tmp_path / "secret_key") in last
    assert "Set SECRET_KEY" in last


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
