"""Settings shared by every mode, read from the environment.

Every variable is documented in docs/configuration.md. With no variables at all the service
runs on the embedded default: SQLite under var/, the in-memory channel layer and a Celery broker
on the local filesystem, so nothing but Python is needed.
"""

from __future__ import annotations

from pathlib import Path

import environ

from config.logging import REFUSAL_LOGGERS

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()


def env_secret(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the file named by NAME_FILE (Docker and Kubernetes secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


def env_bool(name: str, default: bool = False) -> bool:
    """A strict boolean: a typo such as DEBUG=ture must fail loudly, not read as False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise environ.ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=False)
# Each mode decides what an unset SECRET_KEY means: local.py (the embedded default) makes a
# random key for the install in VAR_DIR/secret_key, test.py uses a key of its own, and
# production.py refuses to start. Left empty, Django refuses to run.
SECRET_KEY = env_secret("SECRET_KEY") or ""
# Where the embedded default keeps the key it made for this install (lib.crypto.install_key).
SECRET_KEY_INSTALL_FILE = VAR_DIR / "secret_key"
# Keys for the secrets stored in the database (Slack URL, push and callback header values, push
# signing secret), newest first; empty: SECRET_KEY and SECRET_KEY_FALLBACKS (lib/crypto.py).
FIELD_ENCRYPTION_KEYS = [
    k.strip() for k in (env_secret("FIELD_ENCRYPTION_KEYS") or "").split(",") if k.strip()
]
SECRET_KEY_FALLBACKS = [
    k.strip() for k in (env_secret("SECRET_KEY_FALLBACKS") or "").split(",") if k.strip()
]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The absolute URL of the dashboard, used in links sent out (Slack messages, realtimeUrl).
PUBLIC_URL = env.str("PUBLIC_URL", default="http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files, served by the service itself: the docs page works offline.
    "drf_spectacular_sidecar",
    "channels",
    "orgs",
    "spaces",
    "jobs",
    "notifications",
    "schedules",
    "dashboard",
    # Operations: metrics and transition logs wired in every process (config/apps.py).
    "config.apps.OperationsConfig",
]

MIDDLEWARE = [
    # First, so it times and logs everything below it (config/middleware.py).
    "config.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /healthz, /readyz and /metrics, answered before host validation and sessions.
    "config.middleware.ProbeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's own 404/405 answers under /api/ as the API's JSON errors (config/exceptions.py).
    "config.exceptions.ApiErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# SQLite runs in WAL mode with IMMEDIATE transactions: every transaction takes the write lock
# up front, which is what makes a claim atomic there (no upgrade deadlocks between readers).
SQLITE_PATH = VAR_DIR / "db.sqlite3"
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{SQLITE_PATH}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    # Fail fast when PostgreSQL is away instead of hanging requests.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 3)
    if env_bool("DB_POOL", default=True):
        # Under ASGI every request runs on a thread of its own, so Django's persistent
        # connections (CONN_MAX_AGE) would open a new PostgreSQL connection per request. A
        # psycopg pool per process hands connections from one request to the next instead.
        # With CONN_HEALTH_CHECKS a connection is checked on checkout, so a restarted server
        # costs no failed request beyond the ones made while it was down; the backend
        # (lib/postgres) checks only those idle for over a second, not one on every request.
        DATABASES["default"]["ENGINE"] = "lib.postgres"
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
            # While PostgreSQL is away a request waits this long for a connection (a restart
            # of a second or two rides through), then answers 503 "unavailable".
            "timeout": env.float("DB_POOL_TIMEOUT", default=3.0),
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False

IS_POSTGRES = DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, channels and Celery --------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # The embedded default: kombu's filesystem transport, so tasks still run in the Celery
    # worker process, off the request path, with no broker to install.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control in the cwd.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (VAR_DIR / "celery" / _folder).mkdir(parents=True, exist_ok=True)

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish must not hang a request when the broker is away: give up quickly and let the
# outbox sweep send it later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
# The worker reconnects for as long as the broker is away (only the worker reads this; 0 would
# make it exit at the first lost connection).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None

# Live streams (docs/streams.md): the longest a commit waits on the channel layer, how often an
# open socket re-checks its key, and the epoch in streamInstanceId (bump it after restoring the
# database from a backup, so clients refetch instead of trusting their `since`).
STREAM_FANOUT_TIMEOUT = env.float("STREAM_FANOUT_TIMEOUT", default=0.5)
# "thread": committed events are numbered and fanned out by one thread per process, so a
# request does not wait for it; "inline": in the committing request, before it returns.
STREAM_SEQUENCER = env.str("STREAM_SEQUENCER", default="thread")
STREAM_RECHECK_SECONDS = env.float("STREAM_RECHECK_SECONDS", default=30.0)
STREAM_EPOCH = env.int("STREAM_EPOCH", default=1)
# The most events a reconnecting client is replayed (in pages of 1,000) before it is told to
# refetch instead: enough for a minute of fan-out outage at 150 transitions per second.
STREAM_REPLAY_LIMIT = env.int("STREAM_REPLAY_LIMIT", default=10_000)
# In-memory channel layer only (no REDIS_URL): how often a web process with open streams looks
# for events other processes committed (the scheduler, Celery); 0 turns that off.
STREAM_RELAY_SECONDS = env.float("STREAM_RELAY_SECONDS", default=0.25)

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# Whitenoise serves straight from the app and project static folders too (scanned once at
# start-up), so the dashboard works without a `collectstatic` step in every deployment.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["spaces.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Jobyard API",
    "DESCRIPTION": (
        "A job queue over plain HTTP, compatible with the emit.run job API. Authenticate with "
        "`Authorization: Bearer emit_<secret>` or `X-Api-Key: emit_<secret>`. Every error is "
        '`{"error", "code", "details"?}` (docs/api.md, "Errors").'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The tags in the order the docs page shows them; each operation names one (tests/jobs/
    # test_openapi.py holds every operation to this list).
    "TAGS": [
        {"name": "jobs", "description": "Create, list, read, kill and retry jobs (producers)"},
        {"name": "workers", "description": "Poll, claim and the calls on a claimed job"},
        {"name": "schedules", "description": "Recurring jobs (cron)"},
        {"name": "limits", "description": "Per-name concurrency and rate limits"},
    ],
    # Swagger UI (/api/v1/docs) from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        # The key entered under "Authorize" survives a reload (kept in the browser only).
        "persistAuthorization": True,
        "displayOperationId": True,
        # No call to the public swagger.io validator: the page must work offline.
        "validatorUrl": None,
    },
}

# Requests per second allowed for one API key.
API_RATE_LIMIT_PER_SECOND = env.int("API_RATE_LIMIT_PER_SECOND", default=1000)
# Seconds a process keeps an authenticated API key (and its space) before reading it again:
# how late a revocation, a pause or a settings change may take effect (0 = read every time).
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=1.0)
# Failed API key checks allowed per client address and window before it gets 429 (0: off).
AUTH_FAILURE_LIMIT = env.int("AUTH_FAILURE_LIMIT", default=20)
AUTH_FAILURE_WINDOW = env.int("AUTH_FAILURE_WINDOW", default=60)
# Largest request body accepted by the API (the job payload limit is 1 MiB on top of that).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# Outbound HTTP (notifications): refusal of private and loopback targets is lifted only for
# local development and tests.
OUTBOUND_ALLOW_PRIVATE = env_bool("OUTBOUND_ALLOW_PRIVATE", default=False)

# --- Operations (docs/operations.md) ---------------------------------------------------------
# /metrics: a bearer token and/or client networks (CIDR); with neither set it answers 404.
METRICS_TOKEN = env_secret("METRICS_TOKEN", default="") or ""
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Database-derived metrics are cached this long, and cover at most this many spaces.
METRICS_CACHE_SECONDS = env.float("METRICS_CACHE_SECONDS", default=5.0)
METRICS_MAX_SPACES = env.int("METRICS_MAX_SPACES", default=1000)
# Retention: jobs deleted per transaction, and the time one scheduler pass may spend.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=500)
# Short enough that a scheduler told to stop (SIGTERM) exits well within a grace period.
RETENTION_MAX_SECONDS = env.float("RETENTION_MAX_SECONDS", default=10.0)
# Stopping the web process (config/serve.py): keep serving this long after SIGTERM while
# /readyz says "draining", then give requests in flight this long to finish.
WEB_SHUTDOWN_DELAY_SECONDS = env.float("WEB_SHUTDOWN_DELAY_SECONDS", default=0.0)
WEB_SHUTDOWN_GRACE_SECONDS = env.float("WEB_SHUTDOWN_GRACE_SECONDS", default=25.0)

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")  # "json" in production
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "filters": {
        "refusals": {"()": "config.logging.RefusalFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # urllib3's DEBUG lines carry request paths, and webhook paths carry secrets.
        "urllib3": {"level": "WARNING"},
        # A 4xx answer is one line, from config.middleware.RequestLogMiddleware: Django's own
        # records of it (with the traceback of a PermissionDenied) are dropped. 5xx pass.
        **{name: {"filters": ["refusals"]} for name in REFUSAL_LOGGERS},
    },
}
