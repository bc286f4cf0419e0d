"""The game calls' lean handler (api.game_calls) answers what FastAPI answered.

Bets, wins and rollbacks are answered without FastAPI's request machinery; credits still go
through it, with a body model of the same kind. Each malformed or unauthorized request is sent to
both: the problem+json answers (status, `code`, the errors' locations and types) must be the same.
A key revoked while its merchant is betting is refused by the next bet.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from paysaga.settings import DEV_MERCHANT_KEY, DEV_PLATFORM_KEY
from tests.events.api_merchants import client
from tests.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

JSON = {"Content-Type": "application/json"}
LEAN, FASTAPI = "/v1/wallet/bets", "/v1/wallet/credits"
CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "empty body": (b"", JSON),
    "JSON null": (b"null", JSON),
    "JSON array": (b"[]", JSON),
    "JSON string": (b'"bet"', JSON),
    "JSON as text/plain": (b'{"amount": 1}', {"Content-Type": "text/plain"}),
    "JSON with no content type": (b'{"amount": 1}', {}),
    "not JSON, no content type": (b"{not json", {}),
    "not JSON": (b"{not json", JSON),
    "JSON+ media type, wrong shape": (b"[1]", {"Content-Type": "application/vnd.x+json"}),
    "nested too deep": (b"[" * 100 + b"]" * 100, JSON),
    "NUL in a string": (b'{"customer_id": "a\\u0000b"}', JSON),
}


def seen(response: httpx.Response) -> tuple[int, str, list[tuple[Any, str]]]:
    """What a caller can tell apart in a problem answer."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    errors = [(tuple(e["loc"]), e["type"]) for e in body.get("errors", [])]
    return response.status_code, body["code"], errors


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("key", [DEV_MERCHANT_KEY, None, "not-a-key"], ids=["key", "none", "bad"])
async def test_a_malformed_game_call_is_answered_as_fastapi_answers_it(
    stack: Stack, case: str, key: str | None
) -> None:
    content, headers = CASES[case]
    if key is not None:
        headers = {**headers, "Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        lean = await http.post(LEAN, content=content, headers=headers)
        reference = await http.post(FASTAPI, content=content, headers=headers)
    assert seen(lean) == seen(reference)
    assert lean.status_code in (400, 401, 413, 422)


async def test_a_body_of_the_wrong_fields_is_refused_with_each_error_located(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.post(LEAN, json={"amount": 1.5, "currency": "eur", "colour": "red"})
    status, code, errors = seen(answer)
    assert (status, code) == (422, "validation_error")
    assert ("body", "colour") in [loc for loc, _ in errors]
    assert {("body", "colour"): "extra_forbidden", ("body", "customer_id"): "missing"}.items() <= (
        dict(errors).items()
    )


async def test_keys_without_payments_are_refused_as_on_other_routes(stack: Stack) -> None:
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"Brand {uuid.uuid4()}"})
        merchant_id = created.json()["id"]
        ops = await platform.post(
            f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["ops"], "name": "ops"}
        )
        lean_by_platform = await platform.post(LEAN, json={})
        reference_by_platform = await platform.post(FASTAPI, json={})
    async with client(stack, ops.json()["secret"]) as ops_only:
        lean_by_ops = await ops_only.post(LEAN, json={})
        reference_by_ops = await ops_only.post(FASTAPI, json={})
    assert seen(lean_by_platform) == seen(reference_by_platform)
    assert seen(lean_by_platform)[:2] == (403, "forbidden")
    assert seen(lean_by_ops) == seen(reference_by_ops)
    assert seen(lean_by_ops)[:2] == (403, "forbidden")


async def test_a_key_revoked_between_two_bets_is_refused_by_the_second(stack: Stack) -> None:
    async with client(stack, DEV_PLATFORM_KEY) as platform:
        created = await platform.post("/v1/merchants", json={"name": f"Brand {uuid.uuid4()}"})
        merchant_id = created.json()["id"]
        key = await platform.post(
            f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": ["payments"], "name": "g"}
        )
        body = {
            "customer_id": "cus_nobody",
            "game_provider": "pragmatic",
            "transaction_id": f"t-{uuid.uuid4().hex}",
            "game_id": "g",
            "round_id": "r",
            "amount": 100,
            "currency": "EUR",
        }
        async with client(stack, key.json()["secret"]) as game:
            known = [await game.post(LEAN, json=body) for _ in range(2)]  # the second: cached
            revoked = await platform.delete(
                f"/v1/merchants/{merchant_id}/api-keys/{key.json()['id']}"
            )
            assert revoked.status_code == 200, revoked.text
            after = await game.post(LEAN, json=body)
    assert [r.status_code for r in known] != [401, 401]
    assert seen(after)[:2] == (401, "unauthorized")
