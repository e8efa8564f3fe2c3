"""The event vocabulary (jobs/events.py) against what the code records, and its users.

Two ways: the source of every module that records lifecycle events is read for the types it
writes, so a type added there without the vocabulary fails here; and a job is run through the
whole lifecycle, so the types actually stored are checked too.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from jobs import events, services
from jobs.models import JobEvent

ROOT = Path(__file__).resolve().parents[2]
# Every module that writes lifecycle events (the lifecycle, and the callback transport).
RECORDERS = (
    "jobs/services.py",
    "jobs/workflows.py",
    "jobs/groups.py",
    "notifications/transports/callback.py",
)
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def _literals(node: ast.AST) -> set[str] | None:
    """The strings NODE may be: a literal, or a conditional between literals; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        if body is not None and orelse is not None:
            return body | orelse
    return None


def recorded_types(path: str) -> tuple[set[str], list[str]]:
    """(the event types the module writes, the calls whose type is not a literal).

    Types are the second argument of events.record()/events.build(), the `event_type=` of the
    one-statement transitions, and the literal values of variables named event_type.
    """
    tree = ast.parse((ROOT / path).read_text(), path)
    found: set[str] = set()
    opaque: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "events"
                and func.attr in ("record", "build")
            ):
                types = _literals(node.args[1])
                if isinstance(node.args[1], ast.Name) and node.args[1].id == "event_type":
                    pass  # its values are the assignments and keywords below
                elif types is None:
                    opaque.append(f"{path}:{node.lineno} {ast.unparse(node.args[1])}")
                else:
                    found |= types
            for keyword in node.keywords:
                if keyword.arg == "event_type" and (types := _literals(keyword.value)):
                    found |= types
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if "event_type" in names and (types := _literals(node.value)):
                found |= types
    return found, opaque


def test_every_type_the_code_records_is_in_the_vocabulary_and_nothing_else_is():
    written: set[str] = set()
    opaque: list[str] = []
    for path in RECORDERS:
        found, unknown = recorded_types(path)
        written |= found
        opaque += unknown

    assert written, "the scan found no event types: has the recording API changed?"
    assert written - events.LIFECYCLE_TYPES == set(), "recorded, but not in jobs/events.py"
    assert events.LIFECYCLE_TYPES - written == set(), "in jobs/events.py, but never recorded"
    # The one type that is not a literal is the worker's own, in record_custom_event().
    assert [entry.split(" ", 1)[1] for entry in opaque] == ["type"]


def test_the_vocabulary_is_consistent():
    assert events.ENQUEUE_TYPES <= events.TRANSITION_TYPES
    assert not events.TRANSITION_TYPES & events.REPORT_TYPES
    assert not events.CALLBACK_TYPES & (events.TRANSITION_TYPES | events.REPORT_TYPES)
    assert events.LIFECYCLE_TYPES <= events.RESERVED_TYPES
    # The 17 names reserved before the vocabulary was written down once, "blocked"
    # (workflows: a cancelled child waiting again) and "group.progress" (groups).
    assert len(events.RESERVED_TYPES) == 19


def test_the_users_derive_their_sets_from_it():
    from config import metrics
    from notifications import outbox

    assert services.RESERVED_EVENT_TYPES == events.RESERVED_TYPES
    assert metrics.KNOWN_EVENT_TYPES == events.LIFECYCLE_TYPES
    # the same sets as when notifications wrote them down themselves
    assert sorted(outbox.RELEVANT_TYPES) == [
        "blocked",
        "completed",
        "created",
        "dead",
        "killed",
        "pending",
        "retried",
        "started",
    ]
    assert sorted(outbox.PUSH_TRIGGER_TYPES) == ["created", "pending", "retried"]


def test_a_whole_lifecycle_stores_only_vocabulary_types(space):
    with time_machine.travel(T0, tick=False):
        # created -> delivered -> started, the reports, completed
        first, _ = services.create_job(space, {"name": "a"})
        services.poll_jobs(space, count=1)
        services.ack_job(first)
        services.report_progress(first, 50, "half")
        services.checkpoint_job(first, {"at": 1})
        services.keepalive_job(first, 60)
        services.append_logs(first, [{"level": "info", "message": "hi"}])
        services.complete_job(first, {"ok": True})
        # started on poll, retried, dead, retried by hand (pending), killed
        second, _ = services.create_job(
            space, {"name": "b", "max_retries": 1, "backoff": {"type": "fixed", "delaySeconds": 0}}
        )
        services.poll_jobs(space, count=1, ack=True)
        services.fail_job(second, "boom")
        services.poll_jobs(space, count=1, ack=True)
        services.fail_job(second, "boom again")
        services.retry_job(second)
        services.kill_job(second, "enough")
        # scheduled, then due (pending)
        services.create_job(space, {"name": "c", "scheduled_for": T0 + timedelta(seconds=5)})
        services.sweep(now=T0 + timedelta(seconds=5))
        # a child cancelled with its parent, blocked again when the parent is retried
        parent, _ = services.create_job(space, {"name": "d"})
        services.create_job(space, {"name": "e", "depends_on": [parent.pk]})
        services.kill_job(parent, "stop")
        services.retry_job(parent)

    stored = set(JobEvent.objects.filter(space=space).values_list("type", flat=True))

    assert stored <= events.LIFECYCLE_TYPES
    # everything but the callbacks' outcome (notifications/) happened
    assert stored == events.TRANSITION_TYPES | events.REPORT_TYPES


@pytest.mark.parametrize("kind", sorted(events.RESERVED_TYPES))
def test_a_worker_may_not_send_a_reserved_type(api, space, kind):
    job, _ = services.create_job(space, {"name": "a"})
    services.poll_jobs(space, count=1, ack=True)

    response = api.post(f"/api/v1/jobs/{job.id}/event", {"type": kind}, format="json")

    assert response.status_code == 400, kind
    assert "reserved" in str(response.json()["details"]["type"])


def test_a_worker_may_send_a_custom_type(api, space):
    job, _ = services.create_job(space, {"name": "a"})
    services.poll_jobs(space, count=1, ack=True)

    response = api.post(f"/api/v1/jobs/{job.id}/event", {"type": "thumbnail.ready"}, format="json")

    assert response.status_code == 200, response.content
    assert JobEvent.objects.filter(job_id=job.id, type="thumbnail.ready").exists()
