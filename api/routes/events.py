"""The merchant's event feed: every change, in order, from any sequence number on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import BIGINT_MAX, MerchantView
from api.schemas import Event, EventList
from domain.errors import CursorExpired, NotFound

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", response_model=EventList)
async def list_events(
    books: MerchantView,
    after: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None,
    type: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+\.[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> EventList:
    """Events with a sequence above `after`, oldest first: store the last sequence you processed
    and pass it as `after` to miss nothing and see nothing twice. Without `after`, from the oldest
    event kept; 410 `cursor_expired` when events right after `after` were purged by retention."""
    rows, has_more = await books.list_events(after=after or 0, event_type=type, limit=limit)
    # Read after the page: a purge that took events before the page was read shows here.
    if after is not None and after < (await books.merchant()).events_purged_through:
        raise CursorExpired(f"events after {after} are past their retention and were purged")
    return EventList(data=[Event.model_validate(row.payload) for row in rows], has_more=has_more)


@router.get("/{event_id}", response_model=Event)
async def get_event(event_id: str, books: MerchantView) -> Event:
    """One event, as the feed and the webhook show it."""
    row = await books.get_event(event_id)
    if row is None:
        raise NotFound(f"no event {event_id}")
    return Event.model_validate(row.payload)
