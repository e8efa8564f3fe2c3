"""Job functions the worker CLI runs in the client tests (``tests.client.jobfuncs:<name>``)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def slow(job):
    """Mark that the job started (a file named after it), then work for payload["seconds"]."""
    marker_dir = Path(os.environ["JOBYARD_TEST_MARKERS"])
    (marker_dir / job.id).write_text(str(job.attempt_number))
    end = time.monotonic() + float(job.payload.get("seconds", 1))
    while time.monotonic() < end:
        time.sleep(0.05)
    return {"slept": job.payload.get("seconds", 1)}


def echo(job):
    return {"echo": job.payload}
