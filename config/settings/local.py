"""The embedded default and local development: `make run` uses this."""

from lib.crypto import install_key

from .base import *  # noqa: F403
from .base import SECRET_KEY, SECRET_KEY_INSTALL_FILE, env_bool

DEBUG = env_bool("DEBUG", default=True)

# Without SECRET_KEY: a random key made for this install on its first run, kept in
# VAR_DIR/secret_key (mode 600). Back that file up with the database: the secrets stored there
# are encrypted with it (docs/security.md, "Secrets at rest").
SECRET_KEY = SECRET_KEY or install_key(SECRET_KEY_INSTALL_FILE)
