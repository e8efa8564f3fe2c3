"""The job list's query string (GET /spaces/{spaceId}/jobs) in DRF's filter and pagination
shapes, so the OpenAPI document describes it from the same classes that read it.

- `JobFilter` (a filter backend) reads `status`, `name` and `q`;
- `JobPagination` reads `limit`, `offset` and `cursor`, asks `queries.job_page` for the page
  and answers a bare JSON array, the next page in a `Link: <...>; rel="next"` header;
- `check_params` refuses any other parameter, so a misspelt filter is a 400 rather than an
  unfiltered list.

The filter narrows a `JobQuery` where a generic view would narrow a queryset: the page's query
is built by `queries.job_page`, whose text search is bounded (jobs/queries.py), and the
dashboard's job list asks the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from jobs import queries
from jobs.models import Job
from lib.errors import validation_error
from lib.params import int_param
from spaces.models import Space

# DRF's own format override (?format=json) is read before the view runs: not unknown.
DRF_PARAMS = ("format",)


def text_param(params: Mapping[str, Any], name: str, errors: dict, max_length: int = 200) -> str:
    """The text parameter NAME ("" when absent); over MAX_LENGTH or with a NUL it is reported
    in ERRORS under NAME."""
    value = params.get(name) or ""
    if "\x00" in value or len(value) > max_length:
        errors[name] = [f"Invalid value (at most {max_length} characters, no NUL)"]
        return ""
    return value


def check_params(params: Iterable[str], known: Iterable[str]) -> None:
    """Refuse (400 validation_error) any parameter in PARAMS that is not KNOWN."""
    known = tuple(known)
    unknown = sorted(set(params) - {*known, *DRF_PARAMS})
    if unknown:
        message = f"Unknown query parameter (known: {', '.join(known)})"
        raise validation_error({name: [message] for name in unknown})


@dataclass(frozen=True)
class JobQuery:
    """The jobs one list request asks for: a space, narrowed by JobFilter."""

    space: Space
    statuses: list[str] | None = None
    name: str = ""
    text: str = ""


def _query_param(name: str, description: str, schema_type: str = "string") -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": schema_type},
    }


class JobFilter(BaseFilterBackend):
    params = ("status", "name", "q")

    def filter_queryset(self, request, queryset: JobQuery, view) -> JobQuery:
        params = request.query_params
        errors: dict[str, list[str]] = {}
        status = text_param(params, "status", errors)
        name = text_param(params, "name", errors)
        text = text_param(params, "q", errors).strip()
        statuses = None
        if status:
            statuses = [v.strip() for v in status.split(",") if v.strip()]
            bad = [v for v in statuses if v not in Job.Status.values]
            if bad:
                errors["status"] = [f"Unknown status: {', '.join(bad)}"]
        if errors:
            raise validation_error(errors)
        return replace(queryset, statuses=statuses, name=name, text=text)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            _query_param("status", "A status, or several separated by commas"),
            _query_param("name", "Only jobs of this name (exact)"),
            _query_param(
                "q",
                "Text in the job's name, payload or error (or an exact job id), as the "
                "dashboard's search; looks through a bounded window of the newest jobs per page",
            ),
        ]


class JobPagination(BasePagination):
    """limit/offset/cursor over queries.job_page: keyset paging on the time-sortable job id,
    as fast on page 10,000 as on page 1. The body stays a bare array (as emit.run documents
    the list); the next page's URL is in the Link header (RFC 8288), absent on the last page."""

    params = ("limit", "offset", "cursor")
    default_limit = 50
    max_limit = 100
    # OFFSET skips rows one by one: bounded, and there for compatibility; cursors page deeper.
    max_offset = 10_000

    def paginate_queryset(self, queryset: JobQuery, request, view=None) -> list[Job]:
        params = request.query_params
        errors: dict[str, list[str]] = {}
        limit = int_param(
            params, "limit", default=self.default_limit, low=1, high=self.max_limit, errors=errors
        )
        offset = int_param(params, "offset", default=0, high=self.max_offset, errors=errors)
        cursor = params.get("cursor") or ""
        if cursor and not queries.ULID_RE.match(cursor):
            errors["cursor"] = ["Invalid cursor"]
        if offset and queryset.text:
            # A search walks a window below the cursor; skipping into it has no stable meaning.
            errors["offset"] = ["Not with q: follow the Link header's next page"]
        if errors:
            raise validation_error(errors)
        page = queries.job_page(
            queryset.space,
            statuses=queryset.statuses,
            name=queryset.name,
            text=queryset.text,
            before=cursor.upper(),
            offset=offset,
            limit=limit,
        )
        self.request = request
        self.next_cursor = page.older
        return page.jobs

    def get_next_link(self) -> str | None:
        if not self.next_cursor:
            return None
        # The same request with the cursor moved on: filters and limit are kept, offset was
        # spent reaching this page.
        url = remove_query_param(self.request.build_absolute_uri(), "offset")
        return replace_query_param(url, "cursor", self.next_cursor)

    def get_paginated_response(self, data: list) -> Response:
        link = self.get_next_link()
        headers = {"Link": f'<{link}>; rel="next"'} if link else None
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return schema  # a bare array: the paging is in the Link header

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            _query_param("limit", "1-100, default 50", "integer"),
            _query_param("offset", "0-10000, default 0; jobs skipped (not with q)", "integer"),
            _query_param(
                "cursor",
                "Where the next page starts; take the whole URL from the Link header "
                '(rel="next") rather than building it',
            ),
        ]
