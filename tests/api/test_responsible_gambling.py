"""Responsible gambling through the HTTP API: self-exclusion, deposit and loss limits.

Each test asserts what the player's app or the operator sees: statuses and problem codes, the
customer, the limits, their audit and the event feed. Time passing is the stored rows' times
moved back (the checks read the database's clock against them).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.stack import Stack, create_customer, funded_customer, post_payment, wait_terminal

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROVIDER = "rg-games"


def new_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def deposit(api: httpx.AsyncClient, customer_id: str, amount: int) -> httpx.Response:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    return await post_payment(api, "/v1/deposits", body)


async def bet(
    api: httpx.AsyncClient, customer_id: str, amount: int, tx: str | None = None
) -> httpx.Response:
    body = {
        "customer_id": customer_id,
        "game_provider": PROVIDER,
        "transaction_id": tx or new_id("bet"),
        "game_id": "slots",
        "round_id": f"round-of-{tx}" if tx else new_id("round"),
        "amount": amount,
        "currency": "EUR",
    }
    return await api.post("/v1/wallet/bets", json=body)


async def win(api: httpx.AsyncClient, customer_id: str, bet_id: str, amount: int) -> httpx.Response:
    body = {
        "customer_id": customer_id,
        "game_provider": PROVIDER,
        "transaction_id": new_id("win"),
        "bet_transaction_id": bet_id,
        "amount": amount,
    }
    return await api.post("/v1/wallet/wins", json=body)


async def rollback(api: httpx.AsyncClient, customer_id: str, bet_id: str) -> httpx.Response:
    body = {
        "customer_id": customer_id,
        "game_provider": PROVIDER,
        "transaction_id": new_id("rb"),
        "bet_transaction_id": bet_id,
    }
    return await api.post("/v1/wallet/rollbacks", json=body)


async def set_limits(api: httpx.AsyncClient, customer_id: str, **limits: Any) -> dict[str, Any]:
    response = await api.put(
        f"/v1/customers/{customer_id}/limits", json={"currency": "EUR", **limits}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def events_of(
    api: httpx.AsyncClient, event_type: str, customer_id: str
) -> list[dict[str, Any]]:
    """The merchant's events of a type about one customer, in sequence order."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        params: dict[str, str | int] = {"type": event_type, "after": after, "limit": 100}
        page = (await api.get("/v1/events", params=params)).json()
        for event in page["data"]:
            obj = event["data"]["object"]
            if customer_id in (obj.get("id"), obj.get("customer_id")):
                found.append(event)
        if not page["has_more"]:
            return found
        after = page["data"][-1]["sequence"]


def problem_code(response: httpx.Response) -> str:
    code: str = response.json()["code"]
    return code


# ---------------------------------------------------------------------- self-exclusion


async def test_self_excluded_customer_deposits_bets_and_bonuses_refused(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    customer = await funded_customer(api, 10_000)
    cid = customer["id"]
    placed = new_id("bet")
    assert (await bet(api, cid, 1_000, placed)).status_code == 200
    other = new_id("bet")
    assert (await bet(api, cid, 500, other)).status_code == 200

    response = await api.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 7})
    assert response.status_code == 200, response.text
    until = datetime.fromisoformat(response.json()["self_excluded_until"])
    assert timedelta(days=6, hours=23) < until - datetime.now(UTC) <= timedelta(days=7)

    refused = await deposit(api, cid, 1_000)
    assert (refused.status_code, problem_code(refused)) == (422, "customer_self_excluded")
    refused_bet = await bet(api, cid, 100)
    assert (refused_bet.status_code, problem_code(refused_bet)) == (403, "customer_self_excluded")
    assert refused_bet.json()["balance"]["cash"] == 8_500
    grant = await post_payment(
        api,
        f"/v1/customers/{cid}/bonuses",
        {"amount": 1_000, "currency": "EUR", "wagering_multiplier": 1, "expires_in_seconds": 60},
    )
    assert (grant.status_code, problem_code(grant)) == (409, "customer_self_excluded")

    # Wins, rollbacks and withdrawals go on.
    assert (await win(api, cid, placed, 2_000)).status_code == 200
    assert (await rollback(api, cid, other)).status_code == 200
    body = {"customer_id": cid, "amount": 11_000, "currency": "EUR", "destination": "pm_ok"}
    withdrawal = await post_payment(api, "/v1/withdrawals", body)
    assert withdrawal.status_code == 202, withdrawal.text
    assert (await wait_terminal(api, withdrawal.json()["id"]))["status"] == "succeeded"

    events = await events_of(api, "customer.self_excluded", cid)
    assert [e["data"]["object"]["self_excluded_until"] for e in events] == [until.isoformat()]


async def test_self_exclusion_extends_and_never_shortens(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    cid = (await create_customer(api))["id"]
    first = await api.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 30})
    until = first.json()["self_excluded_until"]
    for client, body in ((api, {"days": 1}), (ops_api, {"days": 29}), (ops_api, {"days": 1})):
        again = await client.post(f"/v1/customers/{cid}/self-exclusion", json=body)
        assert again.status_code == 200
        assert again.json()["self_excluded_until"] == until
    longer = await ops_api.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 31})
    assert longer.json()["self_excluded_until"] > until
    permanent = await api.post(f"/v1/customers/{cid}/self-exclusion", json={"permanent": True})
    assert permanent.json()["self_excluded_until"].startswith("9999-12-31")
    shorter = await ops_api.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 365})
    assert shorter.json()["self_excluded_until"].startswith("9999-12-31")
    assert (await api.get(f"/v1/customers/{cid}")).json()["self_excluded_until"].startswith("9999")
    assert len(await events_of(api, "customer.self_excluded", cid)) == 3


@pytest.mark.parametrize(
    "body", [{}, {"days": 0}, {"days": 3, "permanent": True}, {"permanent": False}, {"days": "3"}]
)
async def test_self_exclusion_refuses_invalid_bodies(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    cid = (await create_customer(api))["id"]
    response = await api.post(f"/v1/customers/{cid}/self-exclusion", json=body)
    assert (response.status_code, problem_code(response)) == (422, "validation_error")
    assert (await api.get(f"/v1/customers/{cid}")).json()["self_excluded_until"] is None


async def test_self_exclusion_of_another_merchants_customer_is_not_found(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    from paysaga.settings import DEV_MERCHANT_2_KEY

    cid = (await create_customer(api))["id"]
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as other:
        response = await other.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 1})
        assert response.status_code == 404
        assert (
            await other.get(f"/v1/customers/{cid}/limits", params={"currency": "EUR"})
        ).status_code == 404
    assert (await api.get(f"/v1/customers/{cid}")).json()["self_excluded_until"] is None


# ---------------------------------------------------------------------- limits


async def test_limits_lower_at_once_raise_after_24_hours(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, db_pool: AsyncConnectionPool
) -> None:
    cid = (await create_customer(api))["id"]
    empty = (await api.get(f"/v1/customers/{cid}/limits", params={"currency": "EUR"})).json()
    assert empty["deposit"] == {"day": None, "week": None, "month": None}
    assert empty["pending"] is None

    # Setting a limit where there was none lowers it: at once.
    first = await set_limits(api, cid, deposit={"day": 1_000}, loss={"week": 5_000})
    assert first["deposit"]["day"] == 1_000 and first["loss"]["week"] == 5_000
    assert first["pending"] is None

    raised = await set_limits(api, cid, deposit={"day": 3_000}, loss={"week": 5_000})
    assert raised["deposit"]["day"] == 1_000
    pending = raised["pending"]["deposit"]["day"]
    assert pending["amount"] == 3_000
    effective_at = datetime.fromisoformat(pending["effective_at"])
    assert timedelta(hours=23, minutes=59) < effective_at - datetime.now(UTC) <= timedelta(hours=24)
    # The raise is not yet in force: a deposit over the old limit is refused.
    refused = await deposit(api, cid, 1_001)
    assert (refused.status_code, problem_code(refused)) == (422, "deposit_limit_exceeded")

    # A lower value sent meanwhile replaces the pending raise and applies at once.
    lowered = await set_limits(api, cid, deposit={"day": 800}, loss={"week": 5_000})
    assert lowered["deposit"]["day"] == 800 and lowered["pending"] is None

    # Removing the loss limit waits too; once its time has come it is in force.
    removal = await set_limits(api, cid, deposit={"day": 800})
    assert removal["loss"]["week"] == 5_000
    assert removal["pending"]["loss"]["week"]["amount"] is None
    await _move_pending_back(db_pool, cid, timedelta(hours=24))
    later = (await api.get(f"/v1/customers/{cid}/limits", params={"currency": "EUR"})).json()
    assert later["loss"]["week"] is None and later["pending"] is None

    # A raise of the deposit limit, its 24 hours passed: the deposits it allows go through.
    await set_limits(api, cid, deposit={"day": 2_000})
    refused = await deposit(api, cid, 1_000)
    assert (refused.status_code, problem_code(refused)) == (422, "deposit_limit_exceeded")
    await _move_pending_back(db_pool, cid, timedelta(hours=24))
    assert (await deposit(api, cid, 2_000)).status_code == 202

    changes = (await ops_api.get(f"/v1/customers/{cid}/limits/changes")).json()["data"]
    assert [c["new"]["deposit"]["day"] for c in changes] == [1_000, 1_000, 800, 800, 800]
    assert [c["old"]["deposit"]["day"] for c in changes] == [None, 1_000, 1_000, 800, 800]
    assert {c["actor"] for c in changes} == {changes[0]["actor"]} and changes[0]["key_name"]
    events = await events_of(api, "customer.limits_changed", cid)
    assert [e["data"]["object"]["deposit"]["day"] for e in events] == [1_000, 1_000, 800, 800, 800]


async def _move_pending_back(pool: AsyncConnectionPool, customer_id: str, by: timedelta) -> None:
    """Let `by` pass for the customer's pending limits (their effective_at moved back)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT currency, pending FROM customer_limits WHERE customer_id = %s", (customer_id,)
        )
        for currency, pending in await cur.fetchall():
            for periods in pending.values():
                for slot in periods.values():
                    at = datetime.fromisoformat(slot["effective_at"]) - by
                    slot["effective_at"] = at.isoformat()
            await conn.execute(
                "UPDATE customer_limits SET pending = %s::jsonb WHERE customer_id = %s AND currency = %s",
                (__import__("json").dumps(pending), customer_id, currency),
            )


async def test_limits_refuse_bad_input(api: httpx.AsyncClient) -> None:
    cid = (await create_customer(api))["id"]
    for body in (
        {"currency": "EUR", "deposit": {"day": -1}},
        {"currency": "EUR", "deposit": {"hour": 5}},
        {"currency": "XXX"},
        {"deposit": {"day": 5}},
    ):
        response = await api.put(f"/v1/customers/{cid}/limits", json=body)
        assert response.status_code == 422, (body, response.text)
    missing = await api.put("/v1/customers/cus_missing/limits", json={"currency": "EUR"})
    assert missing.status_code == 404


# ---------------------------------------------------------------------- deposit limits


async def test_deposit_limit_counts_in_flight_and_rolls(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool
) -> None:
    cid = (await create_customer(api))["id"]
    await set_limits(api, cid, deposit={"day": 1_000, "week": 1_500})
    first = await deposit(api, cid, 600)
    assert first.status_code == 202, first.text
    # In flight or succeeded, it counts: 400 more fits exactly, one minor unit more does not.
    at_limit = await deposit(api, cid, 400)
    assert at_limit.status_code == 202, at_limit.text
    over = await deposit(api, cid, 1)
    assert (over.status_code, problem_code(over)) == (422, "deposit_limit_exceeded")
    assert (await wait_terminal(api, first.json()["id"]))["status"] == "succeeded"
    assert (await wait_terminal(api, at_limit.json()["id"]))["status"] == "succeeded"

    # 25 hours later the day's window is free, the week's holds 500 more.
    await _move_deposits_back(db_pool, cid, timedelta(hours=25))
    assert (await deposit(api, cid, 500)).status_code == 202
    week_over = await deposit(api, cid, 1)
    assert (week_over.status_code, problem_code(week_over)) == (422, "deposit_limit_exceeded")


async def test_failed_deposit_frees_its_room(api: httpx.AsyncClient) -> None:
    cid = (await create_customer(api))["id"]
    await set_limits(api, cid, deposit={"day": 1_000})
    body = {"customer_id": cid, "amount": 1_000, "currency": "EUR", "payment_method": "pm_decline"}
    declined = await post_payment(api, "/v1/deposits", body)
    assert declined.status_code == 202
    assert (await wait_terminal(api, declined.json()["id"]))["status"] == "failed"
    assert (await deposit(api, cid, 1_000)).status_code == 202


async def _move_deposits_back(pool: AsyncConnectionPool, customer_id: str, by: timedelta) -> None:
    async with pool.connection() as conn:
        for table in ("payments", "deposit_reservations"):
            await conn.execute(
                f"UPDATE {table} SET created_at = created_at - %s WHERE customer_id = %s",
                (by, customer_id),
            )


async def test_concurrent_deposits_pass_exactly_the_limit(api: httpx.AsyncClient) -> None:
    cid = (await create_customer(api))["id"]
    await set_limits(api, cid, deposit={"day": 1_000})
    answers = await asyncio.gather(*(deposit(api, cid, 100) for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 10 + [422] * 10
    assert {problem_code(a) for a in answers if a.status_code == 422} == {"deposit_limit_exceeded"}
    listed = await api.get(
        "/v1/payments", params={"customer_id": cid, "kind": "deposit", "limit": 100}
    )
    assert len(listed.json()["data"]) == 10


# ---------------------------------------------------------------------- loss limits


async def test_loss_limit_counts_bets_minus_wins_and_not_rollbacks(api: httpx.AsyncClient) -> None:
    cid = (await funded_customer(api, 10_000))["id"]
    await set_limits(api, cid, loss={"day": 1_000})
    first = new_id("bet")
    assert (await bet(api, cid, 600, first)).status_code == 200
    assert (await win(api, cid, first, 100)).status_code == 200  # losses 500
    second = new_id("bet")
    assert (await bet(api, cid, 500, second)).status_code == 200  # exactly at the limit
    over = await bet(api, cid, 1)
    assert (over.status_code, problem_code(over)) == (403, "loss_limit_reached")
    assert over.json()["balance"]["cash"] == 10_000 - 600 + 100 - 500
    # A rolled-back bet counts for nothing: its room comes back.
    assert (await rollback(api, cid, second)).status_code == 200
    assert (await bet(api, cid, 500)).status_code == 200
    assert (await bet(api, cid, 1)).status_code == 403
    # A refused bet is recorded: its replay answers the same refusal.
    tx = new_id("bet")
    assert (await bet(api, cid, 5, tx)).status_code == 403
    assert (await bet(api, cid, 5, tx)).json()["code"] == "loss_limit_reached"


async def test_concurrent_bets_pass_exactly_the_loss_limit(api: httpx.AsyncClient) -> None:
    cid = (await funded_customer(api, 10_000))["id"]
    await set_limits(api, cid, loss={"day": 1_000})
    answers = await asyncio.gather(*(bet(api, cid, 100) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 10 + [403] * 10
    wallet = (await api.get(f"/v1/customers/{cid}/wallet", params={"currency": "EUR"})).json()
    assert wallet["cash"] == 9_000


async def test_no_key_lifts_a_self_exclusion(
    stack: Stack, api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    from paysaga.settings import DEV_PLATFORM_KEY

    cid = (await funded_customer(api, 1_000))["id"]
    excluded = await api.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 2})
    until = excluded.json()["self_excluded_until"]
    # An operator's unblock is about the wallet's block, not the exclusion.
    unblocked = await ops_api.post(f"/v1/customers/{cid}/unblock", json={"reason": "asked"})
    assert unblocked.status_code == 200
    assert unblocked.json()["self_excluded_until"] == until
    for client in (api, ops_api):
        refused = await bet(client, cid, 100)
        assert (refused.status_code, problem_code(refused)) == (403, "customer_self_excluded")
        refused = await deposit(client, cid, 100)
        assert (refused.status_code, problem_code(refused)) == (422, "customer_self_excluded")
    headers = {"Authorization": f"Bearer {DEV_PLATFORM_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as platform:
        shorter = await platform.post(f"/v1/customers/{cid}/self-exclusion", json={"days": 1})
        assert shorter.status_code == 403
        limits = await platform.put(f"/v1/customers/{cid}/limits", json={"currency": "EUR"})
        assert limits.status_code == 403
    assert (await api.get(f"/v1/customers/{cid}")).json()["self_excluded_until"] == until


async def test_loss_limit_window_rolls(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool
) -> None:
    cid = (await funded_customer(api, 10_000))["id"]
    await set_limits(api, cid, loss={"day": 1_000, "week": 1_500})
    assert (await bet(api, cid, 1_000)).status_code == 200
    assert (await bet(api, cid, 1)).status_code == 403
    async with db_pool.connection() as conn:
        await conn.execute(
            "UPDATE wallet_bets SET created_at = created_at - interval '24 hours 1 second'"
            " WHERE customer_id = %s",
            (cid,),
        )
    # A day later the day's losses are free again, the week's hold 500 more.
    assert (await bet(api, cid, 500)).status_code == 200
    over = await bet(api, cid, 1)
    assert (over.status_code, problem_code(over)) == (403, "loss_limit_reached")
