"""What every list takes: a page (`limit`, `starting_after` or `ending_before`), a creation
window (`created[gte]`, `created[lte]`, Unix seconds as Stripe's), and on customers and payments
a metadata filter (`metadata[order_id]=123`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from api.deps import BIGINT_MAX
from api.schemas.common import (
    METADATA_KEY_LENGTH_MAX,
    METADATA_KEY_PATTERN,
    METADATA_KEYS_MAX,
    METADATA_VALUE_LENGTH_MAX,
)
from domain.errors import InvalidRequest
from paysaga.store.pages import Window

# Unix seconds from 1970 to the end of 9999: what a PostgreSQL timestamp and Python both hold.
UNIX_SECONDS_MAX = 253_402_300_799
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="an id of the list's objects"),
]
UnixSeconds = Annotated[int | None, Query(ge=0, le=UNIX_SECONDS_MAX)]


def created_bounds(
    created_gte: Annotated[
        UnixSeconds,
        Query(alias="created[gte]", description="created at or after (Unix seconds)"),
    ] = None,
    created_lte: Annotated[
        UnixSeconds,
        Query(alias="created[lte]", description="created at or before (Unix seconds)"),
    ] = None,
) -> tuple[datetime | None, datetime | None]:
    """From when (included) and until when (excluded) the objects listed were created."""
    return (
        None if created_gte is None else _utc(created_gte),
        # A second holds its fractions: `created[lte]=T` takes what was created before T + 1.
        None
        if created_lte is None or created_lte >= UNIX_SECONDS_MAX
        else _utc(created_lte) + timedelta(seconds=1),
    )


CreatedBounds = Annotated[tuple[datetime | None, datetime | None], Depends(created_bounds)]
StartingAfter = Annotated[
    Cursor,
    Query(description="an id of the list (the last of the page before): the page after it"),
]
EndingBefore = Annotated[
    Cursor,
    Query(description="an id of the list (the first of the page after): the page just before it"),
]


def list_window(
    created: CreatedBounds,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
) -> Window[str]:
    """The page asked for; `starting_after` and `ending_before` together are refused (422)."""
    _one_cursor(starting_after, ending_before)
    return Window[str](limit, starting_after, ending_before, *created)


def cursor_window(
    created: CreatedBounds,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
) -> Window[str]:
    """`list_window` for a list whose route sets its own `limit`."""
    _one_cursor(starting_after, ending_before)
    return Window[str](0, starting_after, ending_before, *created)


def sequence_window(
    created: CreatedBounds,
    starting_after: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="an id of the list: the page after it"),
    ] = None,
    ending_before: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="an id of the list: the page just before it"),
    ] = None,
) -> Window[int]:
    """The page asked for of a list whose ids are numbers; its route sets `limit`."""
    _one_cursor(starting_after, ending_before)
    return Window[int](0, starting_after, ending_before, *created)


def _one_cursor(starting_after: object, ending_before: object) -> None:
    if starting_after is not None and ending_before is not None:
        raise InvalidRequest(
            "pass starting_after or ending_before, not both", code="cursors_exclusive"
        )


ListWindow = Annotated[Window[str], Depends(list_window)]
CursorWindow = Annotated[Window[str], Depends(cursor_window)]
SequenceWindow = Annotated[Window[int], Depends(sequence_window)]

_METADATA_PARAMETER = re.compile(r"^metadata\[(.*)\]$", re.DOTALL)


def metadata_filter(request: Request) -> dict[str, str]:
    """The `metadata[key]=value` pairs of the query: the objects listed hold all of them."""
    pairs: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        match = _METADATA_PARAMETER.match(name)
        if match is None:
            continue
        key = match.group(1)
        if not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX or "[" in key or "]" in key:
            raise InvalidRequest(
                f"a metadata key is 1 to {METADATA_KEY_LENGTH_MAX} characters, without [ or ]",
                code="invalid_metadata",
            )
        if len(value) > METADATA_VALUE_LENGTH_MAX:
            raise InvalidRequest(
                f"a metadata value is at most {METADATA_VALUE_LENGTH_MAX} characters",
                code="invalid_metadata",
            )
        if key in pairs and pairs[key] != value:
            raise InvalidRequest(f"metadata[{key}] is given twice", code="invalid_metadata")
        pairs[key] = value
    if len(pairs) > METADATA_KEYS_MAX:
        raise InvalidRequest(
            f"at most {METADATA_KEYS_MAX} metadata filters", code="invalid_metadata"
        )
    return pairs


MetadataFilter = Annotated[dict[str, str], Depends(metadata_filter)]

# The filter as the OpenAPI document shows it (the route reads the query itself): a deepObject.
METADATA_FILTER_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "metadata",
            "in": "query",
            "required": False,
            "style": "deepObject",
            "explode": True,
            "description": "only the objects whose metadata hold all these pairs:"
            " `metadata[order_id]=123`",
            "schema": {
                "type": "object",
                "maxProperties": METADATA_KEYS_MAX,
                "propertyNames": {
                    "minLength": 1,
                    "maxLength": METADATA_KEY_LENGTH_MAX,
                    "pattern": METADATA_KEY_PATTERN,
                },
                "additionalProperties": {
                    "type": "string",
                    "maxLength": METADATA_VALUE_LENGTH_MAX,
                },
            },
        }
    ]
}


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
