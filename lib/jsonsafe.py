"""JSON that every layer below can carry: the one check for values that arrive from outside.

Every JSON document a client sends (API bodies, NDJSON log lines, WebSocket messages, the JSON
fields of dashboard forms and the admin) goes through `loads` or `check`. A value passes when
PostgreSQL and SQLite can store it and every reader can give it back unchanged:

- no lone surrogate (U+D800..U+DFFF) in any string or key: UTF-8 cannot encode one, so it
  cannot be written to the database or a response;
- no NUL (U+0000) in any string or key: PostgreSQL refuses it in text and jsonb;
- no NaN or ±Infinity, and no number that only parses to one (1e400): JSON cannot represent
  them, so they could be stored but never read back as JSON;
- integers of at most `MAX_INT_DIGITS` digits, and no deeper than `MAX_DEPTH` levels of arrays
  and objects (deeper documents raise RecursionError in the encoders).

`problem(value)` says what is wrong in words, with the path to it, or returns None.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput, JSONString

MAX_DEPTH = 64
MAX_INT_DIGITS = 100

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_INT_LIMIT = 10**MAX_INT_DIGITS


class UnsafeJSON(ValueError):
    """The document is not JSON, or holds a value the service cannot store or read back."""


def _refuse_constant(name: str):
    raise UnsafeJSON(f"{name} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """Parse a JSON document and check it; raises UnsafeJSON with a message for the client."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsafeJSON(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        # NaN and ±Infinity are refused as they are read; numbers out of range (1e400 reads as
        # inf), long integers, strings and depth by `problem`, in one walk.
        value = json.loads(data, parse_constant=_refuse_constant)
    except UnsafeJSON:
        raise
    except RecursionError as exc:
        raise UnsafeJSON(f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise UnsafeJSON(str(exc)) from exc
    found = problem(value)
    if found:
        raise UnsafeJSON(found)
    return value


def _string_problem(text: str) -> str | None:
    match = _BAD_CHAR.search(text)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        return "NUL characters (\\u0000) are not supported"
    return f"lone surrogate \\u{ord(char):04x} is not valid Unicode"


def _where(path: list) -> str:
    return "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """What makes `value` unsafe to store and read back, with where it is; None when it is safe.

    Walks iteratively, so a document of any depth is judged without recursion."""
    stack: list[tuple[Any, list, int]] = [(value, [], 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            found = _string_problem(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, float):
            found = None if math.isfinite(item) else "number out of range"
        elif isinstance(item, int):
            found = (
                f"integer longer than {MAX_INT_DIGITS} digits" if abs(item) >= _INT_LIMIT else None
            )
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return f"nested deeper than {max_depth} levels"
            else:
                found = None
                if isinstance(item, dict):
                    for key, child in item.items():
                        if isinstance(key, str):
                            key_problem = _string_problem(key)
                            if key_problem:
                                return f"{key_problem} (in a key at {_where(path) or 'the top'})"
                        stack.append((child, [*path, key], depth + 1))
                else:
                    for index, child in enumerate(item):
                        stack.append((child, [*path, index], depth + 1))
        else:
            continue
        if found:
            return f"{found} (at {_where(path)})" if path else found
    return None


def clean_text(text: str) -> str:
    """`text` with what cannot be stored replaced: NUL dropped, lone surrogates as U+FFFD.

    For repairing values already stored and for output that must not fail (logs, pages)."""
    return _BAD_CHAR.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def repaired(value: Any) -> Any:
    """A copy of `value` that passes `problem`: strings cleaned, NaN and ±Infinity as null,
    integers too long for MAX_INT_DIGITS as strings, anything nested deeper than MAX_DEPTH as
    its JSON text cut to 1,000 characters. Returns the same object when nothing needed repair."""
    if problem(value) is None:
        return value
    return _repair(value, 0)


def _repair(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value if abs(value) < _INT_LIMIT else str(value)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            try:
                return clean_text(json.dumps(value))[:1000]
            except (RecursionError, ValueError):
                return None
        if isinstance(value, dict):
            return {
                (clean_text(k) if isinstance(k, str) else k): _repair(v, depth + 1)
                for k, v in value.items()
            }
        return [_repair(v, depth + 1) for v in value]
    return value


# What a stored JSON text holds when a value in it may need repair: only SQLite can store these
# (PostgreSQL's jsonb refuses lone surrogates, NUL and NaN), from before the checks above existed.
_SUSPECT = re.compile(r"\\u(?:[dD][89abcdefABCDEF]|0000)|NaN|Infinity")


class SafeJSONFormField(forms.JSONField):
    """The JSON field of a dashboard or admin form, checked like an API body."""

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = loads(value)
        except UnsafeJSON as exc:
            raise ValidationError(f"Enter valid JSON: {exc}", code="invalid") from exc
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return loads(data)
        except UnsafeJSON:
            return InvalidJSONInput(data)


class SafeJSONField(models.JSONField):
    """A JSONField whose reads never hand on what JSON cannot carry.

    A row stored before input was checked (SQLite only: a lone surrogate, NUL or NaN in the JSON
    text) reads back repaired (`repaired`), so one bad row cannot break every page and API answer
    that shows it; the data migration jobs/0005 repairs such rows for good. Its form field (the
    admin's) checks input with `loads`."""

    def from_db_value(self, value, expression, connection):
        result = super().from_db_value(value, expression, connection)
        # PostgreSQL's jsonb cannot hold such a value: no scan of every payload read there.
        if connection.vendor == "sqlite" and isinstance(value, str) and _SUSPECT.search(value):
            return repaired(result)
        return result

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": SafeJSONFormField, **kwargs})


def repair_stored(connection, table: str, column: str, pk: str = "id") -> int:
    """Rewrite the rows of TABLE whose JSON COLUMN holds what `problem` refuses; returns how many.

    For data migrations. Only SQLite can hold such rows; elsewhere this does nothing."""
    if connection.vendor != "sqlite":
        return 0
    # Identifiers come from the migrations' own constants, quoted; values are parameters.
    quote = connection.ops.quote_name
    select = (
        f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)} "  # noqa: S608
        f"WHERE {quote(column)} LIKE %s OR {quote(column)} LIKE %s OR {quote(column)} LIKE %s"
    )
    update = f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s"  # noqa: S608
    fixed_rows = 0
    with connection.cursor() as cursor:
        cursor.execute(select, ["%\\u%", "%NaN%", "%Infinity%"])
        for key, text in cursor.fetchall():
            if not isinstance(text, str) or not _SUSPECT.search(text):
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                continue
            fixed = repaired(value)
            if fixed is value:
                continue
            cursor.execute(update, [json.dumps(fixed), key])
            fixed_rows += 1
    return fixed_rows
