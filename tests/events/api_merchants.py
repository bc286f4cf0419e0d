"""For the stack's API tests: a merchant of the test's own, made through the platform API, with
its webhook endpoint; and a consumer of the event feed paging with `after`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from paysaga.settings import DEV_PLATFORM_KEY
from tests.stack import Stack

WEBHOOK_SECRET = "whsec_api_test_merchant_0123456789"


@dataclass
class OwnMerchant:
    id: str
    ops: httpx.AsyncClient  # a key with payments and ops
    payments: httpx.AsyncClient  # a key with payments only


def client(stack: Stack, key: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30)


@asynccontextmanager
async def merchant_with_endpoint(stack: Stack, url: str) -> AsyncIterator[OwnMerchant]:
    """A new merchant whose webhooks go to `url`, signed with `WEBHOOK_SECRET`."""
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"Brand {uuid.uuid4()}"})
        assert created.status_code == 201, created.text
        merchant_id = created.json()["id"]
        keys = []
        for scopes in (["payments", "ops"], ["payments"]):
            key = await platform.post(
                f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": scopes}
            )
            assert key.status_code == 201, key.text
            keys.append(key.json()["secret"])
    async with client(stack, keys[0]) as ops, client(stack, keys[1]) as payments:
        patched = await ops.patch(
            "/v1/merchant", json={"webhook_url": url, "webhook_secret": WEBHOOK_SECRET}
        )
        assert patched.status_code == 200, patched.text
        yield OwnMerchant(merchant_id, ops, payments)


async def read_feed(
    api: httpx.AsyncClient, after: int = 0, limit: int = 100, **query: str
) -> list[dict[str, Any]]:
    """Every event after `after`, as a consumer reads them: page by page, each page starting
    after the last sequence of the one before."""
    events: list[dict[str, Any]] = []
    while True:
        page = await api.get("/v1/events", params={"after": after, "limit": limit, **query})
        assert page.status_code == 200, page.text
        body = page.json()
        events.extend(body["data"])
        if not body["has_more"]:
            return events
        after = body["data"][-1]["sequence"]
