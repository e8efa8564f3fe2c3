#!/usr/bin/env bash
# Runs every process of the Procfile that the embedded default needs, in the foreground.
# Ctrl-C (or SIGTERM) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
PORT=${PORT:-8000}

pids=()
stop() {
  trap - INT TERM EXIT
  echo "Stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

# config.serve is uvicorn with a graceful stop (requests in flight finish on SIGTERM). One web
# process on the embedded default; the in-memory channel layer does not cross processes, so the
# web process's stream relay (docs/streams.md, "Several processes on the embedded default")
# brings the scheduler's and the worker's events to open streams within a look (0.25 s).
WEB_CONCURRENCY=1 "$PY" -m config.serve -b 127.0.0.1 -p "$PORT" config.asgi:application & pids+=($!)
"$BIN/celery" -A config worker --loglevel=WARNING --pool=threads --concurrency=4 & pids+=($!)
"$PY" manage.py run_scheduler & pids+=($!)
echo "Jobyard is running on http://127.0.0.1:$PORT/ (Ctrl-C stops it)"
# Any process exiting takes the others down with it, so nothing half-runs unnoticed.
wait -n
