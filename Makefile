# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: run test install lint format migrations-check bench bench-quick chaos chaos-quick screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[test]"
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
