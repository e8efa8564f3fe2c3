"""Show or change a space's settings from the command line, for scripted setups.

    manage.py space_settings --space <id or name> [--org slug]
        [--slack-url U] [--slack-events a,b]
        [--push-url U] [--push-header K:V ...] [--no-push-headers] [--push-names n1,n2]
        [--rotate-push-secret] [--show-push-secret] [--test-slack] [--test-push] [--json]
        [--retention-completed-days N] [--retention-failed-days N]
        [--limit NAME:CONCURRENCY[:RATE] ...] [--no-limit NAME ...]
        [--key-limit NAME:CONCURRENCY[:RATE] ...] [--no-key-limit NAME ...]

An empty URL turns a channel off. Values are validated exactly as in the dashboard. URLs and
header values are secrets: the output shows only scheme and host, and header names.

Each group of options is one entry in SECTIONS: a function adding its arguments and one
applying them. Another group of settings (retention, pause) is one more pair of functions.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError, CommandParser

from jobs import flow
from jobs.api.limits import LIMIT_FIELDS, MAX_LIMITS_PER_SPACE
from jobs.models import NameLimit
from lib import errors
from lib.commands import CheckedCommand
from lib.http_headers import parse_header_line
from lib.outbound import masked_url
from notifications import services
from notifications.models import SpaceChannels
from spaces.lookup import space_by_id_or_name
from spaces.models import Space


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _settings_error(error: services.SettingsError) -> CommandError:
    lines = [f"{field}: {msg}" for field, msgs in (error.details or {}).items() for msg in msgs]
    return CommandError("Invalid settings:\n  " + "\n  ".join(lines))


# -- Slack ----------------------------------------------------------------------------------
def slack_arguments(parser: CommandParser) -> None:
    group = parser.add_argument_group("Slack")
    group.add_argument("--slack-url", help="incoming webhook URL; empty turns Slack off")
    group.add_argument(
        "--slack-events",
        help="comma-separated events among created,started,completed,failed,dead,killed",
    )
    group.add_argument("--test-slack", action="store_true", help="send a test message now")


def slack_apply(space: Space, options: dict[str, Any]) -> list[str]:
    url, events = options.get("slack_url"), options.get("slack_events")
    if url is None and events is None:
        return []
    try:
        services.update_slack(space, url=url, events=_csv(events) if events is not None else None)
    except services.SettingsError as error:
        raise _settings_error(error) from error
    return ["slack"]


def _channels(space: Space) -> SpaceChannels:
    """The space's channel settings; a space without them shows the defaults (all off)."""
    return SpaceChannels.find(space) or SpaceChannels()


def slack_show(space: Space) -> dict[str, Any]:
    channels = _channels(space)
    disabled_at = channels.slack_disabled_at
    return {
        "url": masked_url(channels.slack_webhook_url),
        "events": channels.slack_events,
        "disabledAt": disabled_at.isoformat() if disabled_at else None,
        "lastError": channels.slack_last_error or None,
    }


# -- HTTP push ------------------------------------------------------------------------------
def push_arguments(parser: CommandParser) -> None:
    group = parser.add_argument_group("HTTP push")
    group.add_argument("--push-url", help="push (worker wake) URL; empty turns pushes off")
    group.add_argument(
        "--push-header",
        action="append",
        metavar="NAME:VALUE",
        help="a header sent with every push (repeatable; replaces the current headers)",
    )
    group.add_argument("--no-push-headers", action="store_true", help="remove all push headers")
    group.add_argument(
        "--push-names", help="comma-separated job names to push for; empty means every name"
    )
    group.add_argument(
        "--rotate-push-secret", action="store_true", help="new signing secret (printed once)"
    )
    group.add_argument(
        "--show-push-secret", action="store_true", help="print the push signing secret"
    )
    group.add_argument("--test-push", action="store_true", help="send a signed test push now")


def push_apply(space: Space, options: dict[str, Any]) -> list[str]:
    headers: dict[str, str] | None = None
    if options.get("no_push_headers"):
        headers = {}
    if options.get("push_header"):
        headers = {}
        for line in options["push_header"]:
            try:
                name, value = parse_header_line(line)
            except ValueError as error:
                raise CommandError(f"--push-header: {error}") from error
            if name in headers:
                raise CommandError(f"--push-header: {name!r} is given more than once")
            headers[name] = value
    url, names = options.get("push_url"), options.get("push_names")
    changed = []
    if url is not None or headers is not None or names is not None:
        try:
            services.update_push(
                space,
                url=url,
                headers=headers,
                names=_csv(names) if names is not None else None,
            )
        except services.SettingsError as error:
            raise _settings_error(error) from error
        changed.append("push")
    if options.get("rotate_push_secret"):
        services.rotate_push_secret(space)
        options["show_push_secret"] = True
        changed.append("push secret")
    return changed


def push_show(space: Space) -> dict[str, Any]:
    channels = _channels(space)
    return {
        "url": masked_url(channels.push_url),
        "headers": sorted(channels.push_headers or {}),  # names only: values are secrets
        "names": channels.push_names,
        "lastError": channels.push_last_error or None,
    }


# -- Retention (jobs/retention.py) ----------------------------------------------------------
RETENTION_DAYS = (1, 3650)  # the dashboard's bounds


def retention_arguments(parser: CommandParser) -> None:
    group = parser.add_argument_group("Retention")
    group.add_argument("--retention-completed-days", type=int, metavar="DAYS")
    group.add_argument("--retention-failed-days", type=int, metavar="DAYS", help="dead and killed")


def retention_apply(space: Space, options: dict[str, Any]) -> list[str]:
    fields = [
        f
        for f in ("retention_completed_days", "retention_failed_days")
        if options.get(f) is not None
    ]
    low, high = RETENTION_DAYS
    for field in fields:
        if not low <= options[field] <= high:
            flag = "--" + field.replace("_", "-")
            raise CommandError(f"{flag}: must be between {low} and {high} days")
        setattr(space, field, options[field])
    if fields:
        space.save(update_fields=fields)
    return ["retention"] if fields else []


def retention_show(space: Space) -> dict[str, Any]:
    return {
        "completedDays": space.retention_completed_days,
        "failedDays": space.retention_failed_days,
    }


# -- Flow-control limits (jobs/flow.py) -----------------------------------------------------
CONCURRENCY_RANGE = (1, 100_000)  # the limits API's bounds
RATE_RANGE = (0.001, 100_000.0)
LIMIT_HELP = (
    "per-name flow control, repeatable: at most CONCURRENCY jobs of NAME delivered or running "
    "at once, and at most RATE handed out per second. '-' or nothing means no cap of that kind: "
    "'resize:4' caps concurrency only, 'resize::5' (or 'resize:-:5') the rate only, "
    "'resize:4:0.5' both. The values are read from the end, so NAME may contain colons. "
    "Replaces the name's limits (its per-key limits stay)."
)
KEY_LIMIT_HELP = (
    "per-key flow control, repeatable: for each distinct concurrencyKey of NAME's jobs, at "
    "most CONCURRENCY delivered or running at once and at most RATE handed out per second; "
    "written as --limit. Replaces NAME's per-key limits (its limits as a whole stay)."
)


def _limit_value(text: str, cast: Callable[[str], Any], bounds: tuple, what: str) -> Any:
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        value = cast(text)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not {kind}") from None
    low, high = bounds
    if not (math.isfinite(value) and low <= value <= high):
        raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}")
    return value


def _looks_like_value(text: str) -> bool:
    text = text.strip()
    if text in ("", "-"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_limit(spec: str) -> tuple[str, int | None, float | None]:
    """NAME:CONCURRENCY[:RATE] as (name, concurrency, rate); argparse reports the errors.

    The values are read from the end: `a:b:5` is name `a:b` with concurrency 5, because `b`
    is no value, while `img:0:5` is name `img` with an invalid concurrency 0.
    """
    parts = spec.rsplit(":", 2)
    if len(parts) == 3 and _looks_like_value(parts[1]):
        name, concurrency, rate = parts
    elif ":" in spec:
        (name, concurrency), rate = spec.rsplit(":", 1), ""
    else:
        raise argparse.ArgumentTypeError(f"{spec!r}: write NAME:CONCURRENCY[:RATE]")
    try:
        values = (
            _limit_value(concurrency, int, CONCURRENCY_RANGE, "concurrency"),
            _limit_value(rate, float, RATE_RANGE, "rate"),
        )
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise argparse.ArgumentTypeError(f"{spec!r}: the job name must be 1 to 200 characters")
    if values == (None, None):
        raise argparse.ArgumentTypeError(
            f"{spec!r}: give a concurrency, a rate or both (--no-limit {name} removes it)"
        )
    return name, *values


def limit_arguments(parser: CommandParser) -> None:
    group = parser.add_argument_group("Flow-control limits")
    group.add_argument(
        "--limit",
        action="append",
        type=parse_limit,
        metavar="NAME:CONCURRENCY[:RATE]",
        help=LIMIT_HELP,
    )
    group.add_argument(
        "--no-limit",
        action="append",
        metavar="NAME",
        help="remove the limits of job name NAME, per key too (repeatable)",
    )
    group.add_argument(
        "--key-limit",
        action="append",
        type=parse_limit,
        metavar="NAME:CONCURRENCY[:RATE]",
        help=KEY_LIMIT_HELP,
    )
    group.add_argument(
        "--no-key-limit",
        action="append",
        metavar="NAME",
        help="remove the per-key limits of job name NAME (repeatable)",
    )


def _repeated(flag: str, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CommandError(f"{flag}: {', '.join(repeated)} given more than once")


def limit_apply(space: Space, options: dict[str, Any]) -> list[str]:
    limits = options.get("limit") or []
    key_limits = options.get("key_limit") or []
    removals = [name.strip() for name in options.get("no_limit") or []]
    key_removals = [name.strip() for name in options.get("no_key_limit") or []]
    names = [name for name, _, _ in limits]
    key_names = [name for name, _, _ in key_limits]
    for flag, given in (("--limit", names), ("--key-limit", key_names)):
        both = sorted(set(given) & set(removals))
        if both:
            raise CommandError(f"{flag} and --no-limit both name {', '.join(both)}")
        _repeated(flag, given)
    both = sorted(set(key_names) & set(key_removals))
    if both:
        raise CommandError(f"--key-limit and --no-key-limit both name {', '.join(both)}")
    # Each name's four values as they are, then changed by the options: --limit keeps the
    # per-key values, --key-limit the name's.
    touched = set(names) | set(key_names) | set(key_removals)
    values = {
        row.name: {f: getattr(row, f) for f in LIMIT_FIELDS}
        for row in NameLimit.objects.filter(space=space, name__in=touched)
    }
    new = (set(names) | set(key_names)) - set(values)
    if NameLimit.objects.filter(space=space).count() + len(new) > MAX_LIMITS_PER_SPACE:
        raise CommandError(f"At most {MAX_LIMITS_PER_SPACE} limits per space")
    empty = dict.fromkeys(LIMIT_FIELDS)
    for name, concurrency, rate in limits:
        values[name] = values.get(name, empty) | {"concurrency": concurrency, "rate": rate}
    for name, concurrency, rate in key_limits:
        values[name] = values.get(name, empty) | {"key_concurrency": concurrency, "key_rate": rate}
    for name in key_removals:
        if name in values:
            values[name] |= {"key_concurrency": None, "key_rate": None}
    for name, fields in values.items():
        flow.set_limit(space, name, **fields)
    for name in removals:
        flow.set_limit(space, name, concurrency=None, rate=None)
    return ["limits"] if limits or key_limits or removals or key_removals else []


def limit_show(space: Space) -> dict[str, Any]:
    rows = NameLimit.objects.filter(space=space).order_by("name")[:MAX_LIMITS_PER_SPACE]
    shown = {}
    for row in rows:
        shown[row.name] = {"concurrency": row.concurrency, "rate": row.rate}
        if row.key_concurrency is not None or row.key_rate is not None:
            shown[row.name] |= {"keyConcurrency": row.key_concurrency, "keyRate": row.key_rate}
    return shown


@dataclass(frozen=True)
class Section:
    key: str
    add_arguments: Callable[[CommandParser], None]
    apply: Callable[[Space, dict[str, Any]], list[str]]
    show: Callable[[Space], dict[str, Any]]


SECTIONS: list[Section] = [
    Section("slack", slack_arguments, slack_apply, slack_show),
    Section("push", push_arguments, push_apply, push_show),
    Section("retention", retention_arguments, retention_apply, retention_show),
    Section("limits", limit_arguments, limit_apply, limit_show),
]


class Command(CheckedCommand):
    help = (
        "Show or change a space's settings: Slack and HTTP push (empty URL: channel off), "
        "retention, and flow-control limits per job name and per concurrency key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--space", required=True, help="space public id or name")
        parser.add_argument("--org", help="organization slug, when several spaces share a name")
        parser.add_argument("--json", action="store_true", help="print the settings as JSON")
        for section in SECTIONS:
            section.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        space = space_by_id_or_name(options["space"], options.get("org"))
        changed: list[str] = []
        for section in SECTIONS:
            changed += section.apply(space, options)
        space.refresh_from_db()

        tests = []
        if options.get("test_slack"):
            tests.append(("Slack test", services.send_test_slack))
        if options.get("test_push"):
            tests.append(("Push test", services.send_test_push))
        results = {}
        for label, send in tests:
            try:
                delivery = send(space)
            except errors.DomainError as error:
                raise CommandError(f"{label}: {error.message}") from error
            outcome = "ok" if delivery.success else f"failed ({delivery.error})"
            results[label] = outcome
            if not delivery.success and not options["json"]:
                self.stderr.write(f"{label}: {outcome}")

        report: dict[str, Any] = {"space": space.public_id, "name": space.name}
        for section in SECTIONS:
            report[section.key] = section.show(space)
        if options.get("show_push_secret"):
            report["push"]["secret"] = SpaceChannels.of(space).push_secret

        if options["json"]:
            report["changed"] = changed
            report["tests"] = results
            self.stdout.write(json.dumps(report, indent=2))
            return
        if changed:
            self.stdout.write(self.style.SUCCESS(f"Updated: {', '.join(changed)}"))
        for label, outcome in results.items():
            self.stdout.write(f"{label}: {outcome}")
        self.stdout.write(f"Space {space.name} ({space.public_id})")
        for section in SECTIONS:
            values = report[section.key]
            shown = ", ".join(f"{k}={_text(v)}" for k, v in values.items()) or "-"
            self.stdout.write(f"  {section.key}: {shown}")


def _text(value: Any) -> str:
    """A value of the report as the plain output shows it ('-' for nothing)."""
    if value in (None, "", [], {}):
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):  # a limit: concurrency/rate, and per key when set
        text = f"{_text(value.get('concurrency'))}/{_text(value.get('rate'))}"
        if "keyConcurrency" in value:
            text += f" per key {_text(value['keyConcurrency'])}/{_text(value['keyRate'])}"
        return text
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
