"""Request body parsers with a size cap: JSON, and NDJSON (optionally gzip) for logs.

Django only enforces DATA_UPLOAD_MAX_MEMORY_SIZE on request.body; DRF parsers read the stream,
so the cap is enforced here, on what is actually read (a missing or lying Content-Length
changes nothing). Decompressed gzip is capped the same way (no zip bombs).
"""

from __future__ import annotations

import gzip
import zlib

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from lib import errors, jsonsafe


def too_large(limit: int) -> errors.TooLarge:
    return errors.TooLarge("payload_too_large", f"Request body exceeds {limit} bytes")


def read_capped(stream, limit: int) -> bytes:
    if stream is None:
        return b""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large(limit)
    return data


def _decode(raw: bytes, encoding: str) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise errors.Unsupported(
            "unsupported_media_type", f"Unsupported Content-Encoding: {encoding}"
        )
    limit = settings.API_MAX_BODY_BYTES
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        return out
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise ParseError("Malformed gzip body") from exc


def _loads(text: bytes, where: str = ""):
    # One check for every JSON body (lib/jsonsafe): surrogates, NUL, NaN and ±Infinity, long
    # integers and deep nesting are refused here, before any view or serializer sees them.
    try:
        return jsonsafe.loads(text)
    except jsonsafe.UnsafeJSON as exc:
        raise ParseError(f"Malformed JSON{where}: {exc}") from exc


def _parse_json(text: bytes):
    return _loads(text)


class CappedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        raw = read_capped(stream, settings.API_MAX_BODY_BYTES)
        if request is not None:
            raw = _decode(raw, request.META.get("HTTP_CONTENT_ENCODING", ""))
        if not raw.strip():
            return {}
        return _parse_json(raw)


class NDJSONParser(BaseParser):
    """One JSON value per line; returns the list of values (blank lines skipped)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        raw = read_capped(stream, settings.API_MAX_BODY_BYTES)
        if request is not None:
            raw = _decode(raw, request.META.get("HTTP_CONTENT_ENCODING", ""))
        lines = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            lines.append(_loads(line, f" on line {number}"))
        return lines


class JSONLinesParser(NDJSONParser):
    media_type = "application/jsonl"


class NDJSONNewTypeParser(NDJSONParser):
    """The same lines under the media type newer clients send (application/ndjson)."""

    media_type = "application/ndjson"
