"""The worker's name on API calls: the `X-Worker-Id` header (docs/api.md, Workers).

Poll and claim store it on the jobs they hand out and note a sighting (jobs/workers.py); every
other call only checks it, so a malformed one is a 400 wherever it is sent.
"""

from __future__ import annotations

from rest_framework.request import Request

from jobs import workers
from lib.errors import Invalid
from spaces.models import ApiKey

HEADER = "X-Worker-Id"


def worker_header(request: Request) -> str | None:
    """The header's value, or None when absent; a malformed one raises Invalid (400)."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not workers.valid_worker_id(value):
        raise Invalid(
            "validation_error",
            "Validation failed",
            details={
                HEADER: [f"Expected 1 to {workers.MAX_WORKER_ID} printable characters, not blank"]
            },
        )
    return value


def polling_worker(request: Request, key: ApiKey) -> tuple[str, workers.Sighting | None]:
    """The name of the worker polling with KEY (its header, else its key), and its sighting
    when one is due (debounced: not a write per poll); poll and claim write it."""
    name = workers.worker_name(worker_header(request), key.prefix)
    return name, workers.due(key.space_id, name, key.pk)
