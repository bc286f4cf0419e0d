"""The game wallet's rules for aggregators through the HTTP API: bonus winnings that stay bonus,
max bet, forfeit on withdrawal, credits, round settlement, late wins, the calls booked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.api.test_wallet import PROVIDER, Game, game_for, new_id, ok, parts, postings, refused
from tests.stack import post_payment

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def grant(game: Game, amount: int, multiplier: int, **extra: Any) -> dict[str, Any]:
    body = {
        "amount": amount,
        "currency": game.currency,
        "wagering_multiplier": multiplier,
        "expires_in_seconds": 3600,
        **extra,
    }
    response = await post_payment(game.api, f"/v1/customers/{game.customer_id}/bonuses", body)
    assert response.status_code == 201, response.text
    bonus: dict[str, Any] = response.json()
    return bonus


async def credit(game: Game, amount: int, tx: str, kind: str = "free_spin_win") -> httpx.Response:
    body = {
        "customer_id": game.customer_id,
        "game_provider": PROVIDER,
        "transaction_id": tx,
        "type": kind,
        "amount": amount,
        "currency": game.currency,
        "game_id": "book-of-tests",
        "round_id": "fs-" + tx,
    }
    return await game.api.post("/v1/wallet/credits", json=body)


async def test_winnings_of_a_bonus_bet_stay_bonus_until_wagered(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 0)
    await grant(game, 100, multiplier=10)
    bet_id, win_id = new_id("bet"), new_id("win")

    ok(await game.bet(100, tx=bet_id))
    win = ok(await game.win(bet_id, 5_000, tx=win_id))

    assert (parts(win), win["balance"]) == ((0, 5_000), {"cash": 0, "bonus": 5_000, "total": 5_000})
    wallet = await game.wallet()
    assert (wallet["cash"], wallet["bonus"], wallet["wagering_remaining"]) == (0, 5_000, 900)
    assert await postings(db_pool, win_id) == [("game", -5_000), ("customer_bonus", 5_000)]


async def test_a_bonus_that_ends_mid_round_forfeits_its_share_of_the_win(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 0)
    bonus = await grant(game, 100, multiplier=10)
    bet_id, win_id = new_id("bet"), new_id("win")
    ok(await game.bet(100, tx=bet_id))

    forfeit = await ops_api.post(f"/v1/bonuses/{bonus['id']}/forfeit", json={"reason": "abuse"})
    win = ok(await game.win(bet_id, 700, tx=win_id, round_closed=True))

    assert forfeit.status_code == 200, forfeit.text
    assert (parts(win), win["balance"]) == ((0, 0), {"cash": 0, "bonus": 0, "total": 0})
    assert await postings(db_pool, win_id) == [("game", -700), ("bonus_funding", 700)]


async def test_a_bet_drawing_on_the_bonus_above_its_max_bet_is_refused(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 0)
    bonus = await grant(game, 500, multiplier=10, max_bet=50)

    above = refused(await game.bet(60), 403, "bonus_max_bet")
    at = ok(await game.bet(50))

    assert bonus["max_bet"] == 50
    assert above["balance"] == {"cash": 0, "bonus": 500, "total": 500}
    assert at["balance"]["bonus"] == 450


async def test_a_withdrawal_request_forfeits_the_active_bonus(api: httpx.AsyncClient) -> None:
    game = await game_for(api, 1_000)
    bonus = await grant(game, 200, multiplier=5)
    body = {
        "customer_id": game.customer_id,
        "amount": 400,
        "currency": "EUR",
        "destination": "pm_ok",
    }

    withdrawal = await post_payment(api, "/v1/withdrawals", body)

    assert withdrawal.status_code == 202, withdrawal.text
    seen = (await api.get(f"/v1/bonuses/{bonus['id']}")).json()
    assert (seen["status"], seen["remaining"]) == ("forfeited", 0)
    assert (await game.wallet())["bonus"] == 0


async def test_credits_pay_free_spin_and_promotion_wins_from_promotions(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 0)
    free_spin, promo = new_id("fs"), new_id("promo")
    await ops_api.post(f"/v1/customers/{game.customer_id}/block", json={"reason": "rg"})

    first = await credit(game, 250, free_spin)
    again = await credit(game, 250, free_spin)
    other = await credit(game, 250, free_spin, kind="jackpot_win")
    promoted = ok(await credit(game, 100, promo, kind="promo_win"))

    answer = ok(first)
    assert (answer["type"], parts(answer), answer["bet_transaction_id"]) == (
        "free_spin_win",
        (250, 0),
        None,
    )
    assert answer["round_id"] == "fs-" + free_spin
    assert ok(again) == answer and again.headers["idempotent-replayed"] == "true"
    refused(other, 409, "duplicate_transaction")
    assert promoted["balance"] == {"cash": 350, "bonus": 0, "total": 350}
    assert await postings(db_pool, free_spin) == [("promotions", -250), ("customer_wallet", 250)]
    refused(await game.bet(10), 403, "customer_blocked")  # a blocked customer is still paid
    stranger = Game(api, "cus_000000000000000000000000")
    unknown = refused(await credit(stranger, 10, new_id("fs")), 404, "customer_not_found")
    assert unknown["balance"] == {"cash": 0, "bonus": 0, "total": 0}


async def test_a_closing_win_settles_the_round_and_counts_its_lost_bets(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 0)
    await grant(game, 100, multiplier=2)
    round_id, first, lost = new_id("round"), new_id("bet"), new_id("bet")
    ok(await game.bet(30, tx=first, round_id=round_id))
    ok(await game.bet(20, tx=lost, round_id=round_id))

    ok(await game.win(first, 0, round_closed=True))

    assert (await game.wallet())["wagering_remaining"] == 200 - 30 - 20
    refused(await game.rollback(lost), 409, "round_closed")
    refused(await game.win(lost, 10), 409, "round_closed")


async def test_a_win_before_its_bet_is_refused_unrecorded_and_taken_after_it(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 1_000)
    bet_id, win_id = new_id("bet"), new_id("win")

    early = refused(await game.win(bet_id, 300, tx=win_id), 404, "bet_not_found")
    ok(await game.bet(200, tx=bet_id))
    late = await game.win(bet_id, 300, tx=win_id)

    assert early["balance"]["cash"] == 1_000
    assert ok(late)["balance"]["cash"] == 1_100
    assert "idempotent-replayed" not in late.headers


async def test_the_calls_booked_list_by_customer_and_round_in_pages(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 500)
    other = await game_for(api, 0)
    round_a, round_b = new_id("round"), new_id("round")
    first, second, too_big = new_id("bet"), new_id("bet"), new_id("bet")
    ok(await game.bet(100, tx=first, round_id=round_a))
    ok(await game.win(first, 250, round_closed=True))
    ok(await game.bet(50, tx=second, round_id=round_b))
    refused(await game.bet(10_000, tx=too_big, round_id=round_b), 402, "insufficient_funds")

    listed: list[dict[str, Any]] = []
    params: dict[str, Any] = {"customer_id": game.customer_id, "limit": 3}
    while True:
        page = await api.get("/v1/wallet/transactions", params=params)
        assert page.status_code == 200, page.text
        listed += page.json()["data"]
        if not page.json()["has_more"]:
            break
        params["starting_after"] = listed[-1]["id"]
    in_round_b = await api.get(
        "/v1/wallet/transactions",
        params={"customer_id": game.customer_id, "round_id": round_b, "game_provider": PROVIDER},
    )
    none_for_other = await api.get(
        "/v1/wallet/transactions", params={"customer_id": other.customer_id}
    )

    assert [(c["type"], c["outcome"], c["amount"]) for c in listed] == [
        ("bet", "accepted", 100),
        ("win", "accepted", 250),
        ("bet", "accepted", 50),
        ("bet", "insufficient_funds", 10_000),
    ]
    assert listed[1]["answer"]["balance"] == {"cash": 650, "bonus": 0, "total": 650}
    assert listed[3]["answer"]["code"] == "insufficient_funds"
    assert [c["transaction_id"] for c in in_round_b.json()["data"]] == [second, too_big]
    assert none_for_other.json() == {"data": [], "has_more": False}
