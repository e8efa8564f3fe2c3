"""API key scopes, as the emit.run job API names them, and their shorthands."""

from __future__ import annotations

from collections.abc import Iterable

CREATE = "jobs:create"
POLL = "jobs:poll"
ACK = "jobs:ack"
PROGRESS = "jobs:progress"
EVENT = "jobs:event"
KEEPALIVE = "jobs:keepalive"
COMPLETE = "jobs:complete"
FAIL = "jobs:fail"
KILL = "jobs:kill"
RETRY = "jobs:retry"
READ = "jobs:read"
READ_PROGRESS = "jobs:read:progress"
SCHEDULES_WRITE = "schedules:write"
LIMITS_WRITE = "limits:write"
WORKER = "jobs:worker"
WRITE = "jobs:write"

# Shorthands expand to the scopes they stand for.
SHORTHANDS: dict[str, frozenset[str]] = {
    WORKER: frozenset({READ, POLL, ACK, PROGRESS, EVENT, COMPLETE, FAIL, KEEPALIVE}),
    WRITE: frozenset({ACK, PROGRESS, EVENT, COMPLETE, FAIL, KEEPALIVE}),
}

# (scope, label) in the order the dashboard's token form lists them.
CHOICES: list[tuple[str, str]] = [
    (CREATE, "Create jobs"),
    (POLL, "Poll and claim jobs"),
    (ACK, "Acknowledge jobs"),
    (PROGRESS, "Report progress"),
    (EVENT, "Send events, checkpoints and logs"),
    (KEEPALIVE, "Extend deadlines"),
    (COMPLETE, "Complete jobs"),
    (FAIL, "Fail jobs"),
    (KILL, "Kill jobs"),
    (RETRY, "Retry dead or killed jobs"),
    (READ, "Read jobs, events and logs"),
    (READ_PROGRESS, "Read progress only"),
    (SCHEDULES_WRITE, "Manage recurring schedules"),
    (LIMITS_WRITE, "Manage flow-control limits"),
    (WORKER, "Worker (shorthand)"),
    (WRITE, "Write (shorthand)"),
]
ALL: frozenset[str] = frozenset(scope for scope, _ in CHOICES)

# The dashboard's "Worker preset".
WORKER_PRESET: list[str] = [WORKER, READ_PROGRESS]
# What the public, progress-only key of every space carries.
PUBLIC_PROGRESS: list[str] = [READ_PROGRESS]


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The concrete scopes a list of scopes grants, shorthands expanded."""
    granted: set[str] = set()
    for scope in scopes:
        granted.add(scope)
        granted |= SHORTHANDS.get(scope, frozenset())
    return frozenset(granted)


def unknown(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes) - ALL)
