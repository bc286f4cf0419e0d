"""Finding a Stripe operation by paysaga's idempotency key: lists, search, pages.

`status(idempotency_key)`: Stripe has no lookup by idempotency key, so the operation is found by
its metadata, and "no record" (`not_processed`, on which the sagas fail over and would charge a
second time) must be certain. Stripe's search API is eventually consistent (usually under a
minute; "up to an hour behind during outages", Stripe's API reference), its list API is not
(Stripe: "use the list APIs for read-after-write flows"). So `status` reads:
1. PaymentIntents created in the last `SEARCH_LAG` (2 hours), listed and filtered by metadata
   here: everything search may not show yet;
2. search (`metadata['paysaga_idempotency_key']:'<key>'`) for anything older;
3. refunds (no search API) created in the last `REFUND_WINDOW` (25 hours: Stripe forgets an
   idempotency key after 24, so a refund key is not re-sent past it), listed and filtered.
It answers `not_processed` only if all three came back complete and empty; if a list is longer
than `LIST_PAGES_MAX` pages, or search fails (it is not offered in every country), `unknown`:
the saga polls again rather than fail over. Left open, as for any PSP: a request Stripe is still
executing when `status` reads may make its PaymentIntent after the read.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import stripe

from providers.stripe_objects import KEY_METADATA, plain

SEARCH_LAG = timedelta(hours=2)
REFUND_WINDOW = timedelta(hours=25)
LIST_PAGES_MAX = 10
PAGE_SIZE = 100


class Uncertain(Exception):
    """A lookup that could not prove the absence of an operation."""


async def find(client: stripe.StripeClient, idempotency_key: str) -> dict[str, Any] | None:
    """The PaymentIntent or refund made under the key; None only if certainly none."""
    uncertain: list[str] = []
    try:
        intent = await find_intent(client, idempotency_key)
    except Uncertain as exc:
        intent, uncertain = None, [str(exc)]
    if intent is not None:
        return intent
    since = int(time.time() - REFUND_WINDOW.total_seconds())
    try:
        refund = await listed(client, "refunds", since, idempotency_key)
    except Uncertain as exc:
        refund, uncertain = None, [*uncertain, str(exc)]
    if refund is not None:
        return refund
    if uncertain:
        raise Uncertain("; ".join(uncertain))
    return None


async def find_intent(client: stripe.StripeClient, idempotency_key: str) -> dict[str, Any] | None:
    """The PaymentIntent made under the key: recent ones listed, older ones searched."""
    since = int(time.time() - SEARCH_LAG.total_seconds())
    recent = await listed(client, "payment_intents", since, idempotency_key)
    if recent is not None:
        return recent
    quoted = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
    query = f"metadata['{KEY_METADATA}']:'{quoted}'"
    try:
        found = await client.v1.payment_intents.search_async({"query": query})
    except (stripe.InvalidRequestError, stripe.PermissionError) as exc:
        raise Uncertain(f"search refused: {exc.code or exc.http_status}") from exc
    for intent in found.data:
        candidate = plain(intent)
        if (candidate.get("metadata") or {}).get(KEY_METADATA) == idempotency_key:
            return candidate
    return None


async def listed(
    client: stripe.StripeClient, resource: str, since: int, key: str
) -> dict[str, Any] | None:
    params = {"created": {"gte": since}}
    async for obj in list_pages(client, resource, params, pages=LIST_PAGES_MAX):
        if (obj.get("metadata") or {}).get(KEY_METADATA) == key:
            return obj
    return None


async def list_pages(
    client: stripe.StripeClient, resource: str, params: dict[str, Any], *, pages: int | None
) -> AsyncIterator[dict[str, Any]]:
    """Every object of a list, newest first; `Uncertain` past `pages` pages."""
    service = getattr(client.v1, resource)
    cursor: str | None = None
    for _ in range(pages) if pages is not None else itertools.count():
        page_params = {**params, "limit": PAGE_SIZE}
        if cursor is not None:
            page_params["starting_after"] = cursor
        page = await service.list_async(page_params)
        objects = [plain(obj) for obj in page.data]
        for obj in objects:
            yield obj
        if not page.has_more or not objects:
            return
        cursor = objects[-1]["id"]
    raise Uncertain(f"more than {pages} pages of {resource}")
