"""The test suite: the embedded default unless DATABASE_URL / REDIS_URL are set (CI sets them)."""

from .base import *  # noqa: F403
from .base import SECRET_KEY, VAR_DIR

DEBUG = False
# A key of the test suite's own, so every test process (and server it starts with these
# settings) agrees whatever its VAR_DIR; no install runs with it.
SECRET_KEY = SECRET_KEY or "test-suite-only-key-" + "t" * 44
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests talk to receivers they start on 127.0.0.1.
OUTBOUND_ALLOW_PRIVATE = True
# Every test client comes from 127.0.0.1: the failure throttle would carry over between tests.
# tests/security turns it on where it is under test.
AUTH_FAILURE_LIMIT = 0
# Keys are read on every request, so a test may revoke a key or pause a space and see it at
# once; tests/perf turns the cache on where it is under test.
API_KEY_CACHE_SECONDS = 0
# Events are numbered in the committing call, so a test sees seq and counts as soon as the call
# returns; tests/jobs/test_sequencer.py covers the thread that production uses.
STREAM_SEQUENCER = "inline"
# Celery runs tasks in-process unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# On the embedded default the test database is a file, not the in-memory database Django would
# make: every thread then opens a connection of its own (as in production), instead of a
# live_server request thread sharing, and interleaving transactions on, the test's connection.
# Parallel runs in one checkout keep their files apart with TEST_DB_SUFFIX, as on PostgreSQL.
SQLITE_TEST_PATH = VAR_DIR / f"test{env.str('TEST_DB_SUFFIX', default='')}.sqlite3"  # noqa: F405
if not IS_POSTGRES:  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(SQLITE_TEST_PATH)}  # noqa: F405

# Parallel runs on one PostgreSQL server (several checkouts, CI and a developer) keep their test
# databases apart with TEST_DB_SUFFIX.
if IS_POSTGRES:  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": f"test_jobyard{env.str('TEST_DB_SUFFIX', default='')}"  # noqa: F405
    }
