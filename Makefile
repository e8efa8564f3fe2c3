# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: run test client-test install lint format migrations-check bench bench-quick chaos chaos-quick screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The client (client/, its own distribution) is installed beside the server: the server's tests
# and bench/ drive it.
$(STAMP): pyproject.toml client/pyproject.toml | $(PY)
	$(PIP) install --quiet -e ./client -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# PORT=8011 make run serves on another port; links (realtimeUrl, Slack) follow it.
run: export PUBLIC_URL ?= http://localhost:$(or $(PORT),8000)
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	PY=$(PY) scripts/run-local.sh

# Runs on the embedded default unless DATABASE_URL / REDIS_URL are set.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The client's own suite in a clean virtual environment holding ./client[test] only: proves the
# client installs and works without any of the server's dependencies (no Django there).
CLIENT_VENV ?= var/client-venv
client-test:
	rm -rf $(CLIENT_VENV)
	$(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install --quiet --upgrade pip
	$(CLIENT_VENV)/bin/pip install --quiet "./client[test]"
	@if $(CLIENT_VENV)/bin/python -c "import django" 2>/dev/null; then \
		echo "client-test: Django is importable in $(CLIENT_VENV); the client must not need it" >&2; \
		exit 1; \
	fi
	$(CLIENT_VENV)/bin/pytest client/tests -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

# Benchmarks against the local PostgreSQL and Redis: `make bench` (full) or `make bench-quick`.
bench: install
	$(PY) bench/run.py

bench-quick: install
	$(PY) bench/run.py --quick

# The fault script (restarts the local PostgreSQL and Redis!): `make chaos` or `make chaos-quick`.
chaos: install
	$(PY) bench/chaos.py

chaos-quick: install
	$(PY) bench/chaos.py --quick

# Refreshes the README's dashboard pictures from the browser test (needs /usr/bin/chromium).
screenshots: install
	JOBYARD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/e2e -q

clean:
	rm -rf $(VENV) var
