"""Every list pages both ways as Stripe's do: `starting_after` (the page after an id) and
`ending_before` (the page just before it), in the list's own order either way, and takes
`created[gte]`/`created[lte]` in Unix seconds."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from tests.stack import create_customer, post_payment


async def page(api: httpx.AsyncClient, path: str, **params: Any) -> tuple[list[str], bool]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [item["id"] for item in body["data"]], body["has_more"]


async def customer_with_deposits(api: httpx.AsyncClient, count: int) -> tuple[str, list[str]]:
    """A new customer and its deposits, newest first (the order of `GET /v1/payments`)."""
    customer = await create_customer(api)
    ids = []
    for _ in range(count):
        body = {"customer_id": customer["id"], "amount": 100, "currency": "EUR"}
        deposit = await post_payment(api, "/v1/deposits", {**body, "payment_method": "pm_ok"})
        assert deposit.status_code == 202, deposit.text
        ids.append(deposit.json()["id"])
    return customer["id"], ids[::-1]


async def test_payments_page_forwards_and_backwards(api: httpx.AsyncClient) -> None:
    customer_id, newest_first = await customer_with_deposits(api, 3)
    third, second, first = newest_first
    mine = {"customer_id": customer_id}

    assert await page(api, "/v1/payments", **mine, limit=2) == ([third, second], True)
    assert await page(api, "/v1/payments", **mine, limit=2, starting_after=second) == (
        [first],
        False,
    )
    # The page just before the cursor, still newest first; has_more: more before it.
    assert await page(api, "/v1/payments", **mine, limit=2, ending_before=first) == (
        [third, second],
        False,
    )
    assert await page(api, "/v1/payments", **mine, limit=1, ending_before=first) == (
        [second],
        True,
    )
    assert await page(api, "/v1/payments", **mine, limit=1, ending_before=third) == ([], False)


async def test_payments_are_filtered_by_creation_time(api: httpx.AsyncClient) -> None:
    customer_id, newest_first = await customer_with_deposits(api, 2)
    mine = {"customer_id": customer_id}
    now = int(time.time())
    window = {"created[gte]": now - 3600, "created[lte]": now + 3600}
    assert (await page(api, "/v1/payments", **mine, **window))[0] == newest_first
    assert await page(api, "/v1/payments", **mine, **{"created[gte]": now + 3600}) == ([], False)
    assert await page(api, "/v1/payments", **mine, **{"created[lte]": now - 3600}) == ([], False)
    # A payment created within a second is in `created[gte]` and `created[lte]` of that second.
    created = (await api.get(f"/v1/payments/{newest_first[0]}")).json()["created_at"]
    second = int(datetime.fromisoformat(created).timestamp())
    assert (
        newest_first[0]
        in (
            await page(
                api, "/v1/payments", **mine, **{"created[gte]": second, "created[lte]": second}
            )
        )[0]
    )


async def test_every_list_reads_the_same_both_ways(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    await customer_with_deposits(api, 3)
    for client, path in (
        (api, "/v1/payments"),
        (api, "/v1/customers"),
        (ops_api, "/v1/merchant/api-keys"),
        (ops_api, "/v1/ops/audit-log"),
        (api, "/v1/disputes"),
    ):
        first, more = await page(client, path, limit=2)
        if not more:
            continue  # one page only (no dispute yet in this session)
        second, _ = await page(client, path, limit=2, starting_after=first[-1])
        assert await page(client, path, limit=2, ending_before=second[0]) == (first, False), path


async def test_bad_cursors_are_refused(api: httpx.AsyncClient) -> None:
    _, newest_first = await customer_with_deposits(api, 1)
    both = await api.get(
        "/v1/payments",
        params={"starting_after": newest_first[0], "ending_before": newest_first[0]},
    )
    assert both.status_code == 422, both.text
    assert both.json()["code"] == "cursors_exclusive"
    unknown = await api.get("/v1/payments", params={"ending_before": "dep_nothing"})
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["code"] == "cursor_not_found"
    for bad in ("-1", "soon", "1e3", str(10**12)):
        response = await api.get("/v1/payments", params={"created[gte]": bad})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"
