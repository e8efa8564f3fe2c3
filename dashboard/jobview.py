"""How the job page tells what happened: errors, the backoff policy, attempts and the timeline.

Pure presentation over rows already read (through jobs/queries.py); nothing here queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.models import JobEvent

# Worker reports that come in long runs; consecutive ones of one type collapse into one entry.
COLLAPSIBLE_TYPES = frozenset({"progress", "keepalive", "logs", "checkpoint"})
# Events whose data carries the error of the attempt that just failed.
FAILURE_TYPES = ("retried", "dead")
# Leaves of a run shown when it is expanded; the rest of a long run is summarised.
RUN_ITEMS_SHOWN = 20


@dataclass
class ErrorView:
    """An error as a worker sent it: a plain string, or {type, message, traceback}."""

    text: str = ""  # the plain string form (pre-formatted as is)
    type: str = ""
    message: str = ""
    traceback: str = ""

    @property
    def structured(self) -> bool:
        return not self.text

    @property
    def headline(self) -> str:
        """One line for lists: "ValueError: bad input", or the first line of the text."""
        if self.structured:
            head = f"{self.type}: {self.message}" if self.type else self.message
        else:
            head = self.text
        head = head.strip()
        return head.splitlines()[0] if head else ""

    def __bool__(self) -> bool:
        return bool(self.text or self.type or self.message or self.traceback)


def error_view(value: Any) -> ErrorView:
    """VALUE (a string, a {type, message, traceback} object, or that object as JSON text, as
    `last_error` may store it) as an ErrorView. Anything else is shown as indented JSON."""
    if value is None or value == "":
        return ErrorView()
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and _looks_structured(parsed):
                return _structured(parsed)
        return ErrorView(text=value)
    if isinstance(value, dict) and _looks_structured(value):
        return _structured(value)
    return ErrorView(text=json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _looks_structured(value: dict) -> bool:
    return bool({"message", "traceback", "type"} & value.keys())


def _structured(value: dict) -> ErrorView:
    def text(key: str) -> str:
        item = value.get(key)
        if item is None:
            return ""
        return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)

    return ErrorView(type=text("type"), message=text("message"), traceback=text("traceback"))


def describe_backoff(policy: Any, default: dict) -> str:
    """The retry backoff in words: "exponential: 1 s, doubling each retry, at most 1 h, with
    jitter". POLICY is the job's own (may be None or partial) over DEFAULT, as the service
    merges them (jobs.services.backoff_delay)."""
    merged = dict(default)
    if isinstance(policy, dict):
        merged.update(policy)
    base = _seconds(merged.get("delaySeconds"))
    cap = _seconds(merged.get("maxDelaySeconds"))
    jitter = bool(merged.get("jitter"))
    if merged.get("type") == "fixed":
        words = f"fixed: {duration(base)} between attempts"
    else:
        words = f"exponential: {duration(base)} after the first failure, doubling each retry"
    if cap and (merged.get("type") != "fixed" or cap < base):
        words += f", at most {duration(cap)}"
    if jitter and base > 0:
        words += ", with jitter (a random wait between half and all of it)"
    return words


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value or 0))
    except (TypeError, ValueError):
        return 0.0


def duration(seconds: float) -> str:
    """12 s, 1.5 s, 2 min, 1 h 30 min, 2 d."""
    if seconds < 60:
        return f"{seconds:g} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    parts = []
    rest = int(round(seconds))
    for name, size in units:
        if rest >= size:
            parts.append(f"{rest // size} {name}")
            rest %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


# --- attempts --------------------------------------------------------------------------------


@dataclass
class FailedAttempt:
    attempt: int  # counted from 1, as the database column
    outcome: str  # "retried" or "dead"
    at: Any
    error: ErrorView


def failed_attempts(events: Iterable[JobEvent]) -> list[FailedAttempt]:
    """One entry per failed attempt, oldest first, from the job's retried and dead events.

    A `retried` event is written after the attempt counter moved on, so the attempt that
    failed is the one before it; a `dead` event keeps the attempt that failed.
    """
    out = []
    for event in events:
        if event.type not in FAILURE_TYPES:
            continue
        data = event.data if isinstance(event.data, dict) else {}
        attempt = event.attempt_number - 1 if event.type == "retried" else event.attempt_number
        out.append(
            FailedAttempt(
                attempt=max(attempt, 1),
                outcome=event.type,
                at=event.created_at,
                error=error_view(data.get("error")),
            )
        )
    return out


# --- the timeline ----------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    """One event, or a run of consecutive reports of one type (`count` > 1)."""

    event: JobEvent  # the newest of a run
    first: JobEvent | None = None  # the oldest of a run
    members: list[JobEvent] = field(default_factory=list)  # the newest RUN_ITEMS_SHOWN of a run
    count: int = 1
    error: ErrorView | None = None
    summary: str = ""

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def hidden(self) -> int:
        return self.count - len(self.members)


def timeline(events: Sequence[JobEvent]) -> list[TimelineEntry]:
    """EVENTS (oldest first) with each run of consecutive reports of one type folded into one
    entry: sixty progress updates become "progress ×60, 5% → 100%"."""
    entries: list[TimelineEntry] = []
    run: list[JobEvent] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            entries.append(_single(run[0]))
        else:
            entries.append(
                TimelineEntry(
                    event=run[-1],
                    first=run[0],
                    members=list(reversed(run[-RUN_ITEMS_SHOWN:])),
                    count=len(run),
                    summary=_run_summary(run),
                )
            )
        run.clear()

    for event in events:
        if event.type in COLLAPSIBLE_TYPES and (not run or run[-1].type == event.type):
            run.append(event)
            continue
        flush()
        if event.type in COLLAPSIBLE_TYPES:
            run.append(event)
        else:
            entries.append(_single(event))
    flush()
    return entries


def _single(event: JobEvent) -> TimelineEntry:
    data = event.data if isinstance(event.data, dict) else {}
    error = error_view(data.get("error")) if "error" in data else None
    return TimelineEntry(event=event, error=error or None, summary=_event_summary(event))


def _event_summary(event: JobEvent) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "progress":
        return _progress_text(data)
    if event.type == "killed" and data.get("reason"):
        return str(data["reason"])
    if event.type == "pending" and data.get("reason"):
        return f"reason: {data['reason']}"
    if event.type == "logs" and isinstance(data.get("count"), int):
        return f"{data['count']} line{'s' if data['count'] != 1 else ''}"
    return ""


def _progress_text(data: dict) -> str:
    percent = data.get("percent")
    text = f"{percent:g}%" if isinstance(percent, int | float) else ""
    message = data.get("message")
    if isinstance(message, str) and message:
        text = f"{text} {message}".strip()
    return text


def _run_summary(run: list[JobEvent]) -> str:
    if run[0].type == "progress":
        first = _progress_text(run[0].data if isinstance(run[0].data, dict) else {})
        last = _progress_text(run[-1].data if isinstance(run[-1].data, dict) else {})
        if first and last:
            return f"{first} → {last}"
    if run[0].type == "logs":
        total = sum(
            e.data.get("count", 0)
            for e in run
            if isinstance(e.data, dict) and isinstance(e.data.get("count"), int)
        )
        return f"{total} lines"
    return ""


# --- the workflow graph ----------------------------------------------------------------------

# Spacing of the job page's workflow graph (SVG user units): between jobs of one level, between
# levels, and a node's radius.
GRAPH_DX = 28
GRAPH_DY = 48
GRAPH_R = 8


@dataclass
class GraphNode:
    job: Any
    x: float
    y: float
    current: bool


@dataclass
class GraphLayout:
    """A workflow drawn top-down, roots first: nodes at (x, y), edges as line segments."""

    width: float
    height: float
    nodes: list[GraphNode]
    edges: list[tuple[float, float, float, float]]
    truncated: bool


def workflow_layout(graph: Any, current_id: str) -> GraphLayout:
    """Place GRAPH (jobs/workflows.py workflow_graph: levels and edges) for an inline SVG;
    each level is centred on the widest one."""
    widest = max((len(level) for level in graph.levels), default=1)
    width = widest * GRAPH_DX + GRAPH_DX
    at: dict[str, tuple[float, float]] = {}
    nodes: list[GraphNode] = []
    for depth, level in enumerate(graph.levels):
        offset = (width - len(level) * GRAPH_DX) / 2 + GRAPH_DX / 2
        for index, job in enumerate(level):
            x, y = offset + index * GRAPH_DX, GRAPH_DY / 2 + depth * GRAPH_DY
            at[job.pk] = (x, y)
            nodes.append(GraphNode(job=job, x=x, y=y, current=job.pk == current_id))
    edges = [
        (*at[parent], *at[child]) for parent, child in graph.edges if parent in at and child in at
    ]
    return GraphLayout(
        width=width,
        height=len(graph.levels) * GRAPH_DY,
        nodes=nodes,
        edges=edges,
        truncated=graph.truncated,
    )
