"""The game wallet through the HTTP API: bets, wins, rollbacks, bonuses, blocks, merchants.

Every test asserts what a user sees: the answers (and their problem codes and balances), the
wallet view, the ledger's entries of each call, the event feed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from paysaga.settings import DEV_MERCHANT_2_KEY
from tests.stack import Stack, balance_of, create_customer, funded_customer, post_payment
from tests.wallet.conftest import wallet_audit

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROVIDER = "pragmatic"


def new_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(loop_scope="session")
async def merchant_b(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_2_KEY}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


class Game:
    """A game integration calling the wallet for one customer."""

    def __init__(self, api: httpx.AsyncClient, customer_id: str, currency: str = "EUR") -> None:
        self.api, self.customer_id, self.currency = api, customer_id, currency

    async def bet(
        self, amount: int, tx: str | None = None, round_id: str = "r1", **extra: Any
    ) -> httpx.Response:
        body = {
            "customer_id": self.customer_id,
            "game_provider": PROVIDER,
            "transaction_id": tx or new_id("bet"),
            "game_id": "book-of-tests",
            "round_id": round_id,
            "amount": amount,
            "currency": self.currency,
            **extra,
        }
        return await self.api.post("/v1/wallet/bets", json=body)

    async def win(
        self, bet: str, amount: int, tx: str | None = None, **extra: Any
    ) -> httpx.Response:
        body = {
            "customer_id": self.customer_id,
            "game_provider": PROVIDER,
            "transaction_id": tx or new_id("win"),
            "bet_transaction_id": bet,
            "amount": amount,
            **extra,
        }
        return await self.api.post("/v1/wallet/wins", json=body)

    async def rollback(self, bet: str, tx: str | None = None, **extra: Any) -> httpx.Response:
        body = {
            "customer_id": self.customer_id,
            "game_provider": PROVIDER,
            "transaction_id": tx or new_id("rb"),
            "bet_transaction_id": bet,
            **extra,
        }
        return await self.api.post("/v1/wallet/rollbacks", json=body)

    async def wallet(self) -> dict[str, Any]:
        response = await self.api.get(
            f"/v1/customers/{self.customer_id}/wallet", params={"currency": self.currency}
        )
        assert response.status_code == 200, response.text
        wallet: dict[str, Any] = response.json()
        return wallet

    async def grant(self, amount: int, multiplier: int, seconds: int = 3600) -> httpx.Response:
        body = {
            "amount": amount,
            "currency": self.currency,
            "wagering_multiplier": multiplier,
            "expires_in_seconds": seconds,
        }
        return await post_payment(self.api, f"/v1/customers/{self.customer_id}/bonuses", body)


async def game_for(api: httpx.AsyncClient, cash: int) -> Game:
    """A game for a new customer whose cash wallet holds `cash` after a real deposit."""
    if cash:
        customer = await funded_customer(api, cash)
    else:
        customer = await create_customer(api)
    return Game(api, customer["id"])


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def parts(answer: dict[str, Any]) -> tuple[int, int]:
    return answer["cash_part"], answer["bonus_part"]


async def postings(pool: AsyncConnectionPool[Any], transaction_id: str) -> list[tuple[str, int]]:
    """The ledger entries of a game call (by its transaction id), as (account kind, amount)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT a.kind, e.amount FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " JOIN ledger_accounts a ON a.id = e.account_id"
            " WHERE t.idempotency_key LIKE %s ORDER BY e.id",
            (f"wallet:%:{PROVIDER}:{transaction_id}",),
        )
        return [(kind, amount) for kind, amount in await cur.fetchall()]


async def booked(api: httpx.AsyncClient, customer_id: str, transaction_id: str) -> None:
    """Wait until the wallet lists the call as booked (for a call whose answer was lost)."""
    params: dict[str, Any] = {"customer_id": customer_id, "limit": 100}
    for _ in range(400):
        page = await api.get("/v1/wallet/transactions", params=params)
        assert page.status_code == 200, page.text
        if transaction_id in [call["transaction_id"] for call in page.json()["data"]]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{transaction_id} was never booked")


async def wallet_events(api: httpx.AsyncClient, transaction_id: str) -> list[dict[str, Any]]:
    """The merchant's wallet.transaction events of one call."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await api.get(
            "/v1/events", params={"type": "wallet.transaction", "after": after, "limit": 100}
        )
        assert page.status_code == 200, page.text
        for event in page.json()["data"]:
            if event["data"]["object"]["transaction_id"] == transaction_id:
                found.append(event)
            after = event["sequence"]
        if not page.json()["has_more"]:
            return found


# ---------------------------------------------------------------------- bets and wins


async def test_bet_then_win_moves_money_through_the_game_account(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 10_000)
    bet_id, win_id = new_id("bet"), new_id("win")

    bet = ok(await game.bet(2_500, tx=bet_id))
    win = ok(await game.win(bet_id, 4_000, tx=win_id, round_closed=True))

    assert (bet["type"], bet["amount"], bet["currency"], parts(bet)) == (
        "bet",
        2_500,
        "EUR",
        (2_500, 0),
    )
    assert bet["balance"] == {"cash": 7_500, "bonus": 0, "total": 7_500}
    assert (win["type"], parts(win), win["balance"]["cash"]) == ("win", (4_000, 0), 11_500)
    assert await game.wallet() == {
        "customer_id": game.customer_id,
        "currency": "EUR",
        "cash": 11_500,
        "bonus": 0,
        "total": 11_500,
        "wagering_remaining": 0,
    }
    assert (await balance_of(api, game.customer_id, "EUR"))["available"] == 11_500
    assert await postings(db_pool, bet_id) == [("customer_wallet", -2_500), ("game", 2_500)]
    assert await postings(db_pool, win_id) == [("game", -4_000), ("customer_wallet", 4_000)]
    [event] = await wallet_events(api, win_id)
    assert event["data"]["object"] == win


async def test_replays_of_a_bet_a_win_and_a_rollback_post_once(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 10_000)
    bet_id, win_id, other_bet, rollback_id = (new_id(n) for n in ("bet", "win", "bet", "rb"))
    calls = [
        lambda: game.bet(1_000, tx=bet_id),
        lambda: game.win(bet_id, 300, tx=win_id),
        lambda: game.bet(500, tx=other_bet, round_id="r2"),
        lambda: game.rollback(other_bet, tx=rollback_id),
    ]
    for call in calls:
        first = await call()
        again = await call()
        assert ok(again) == ok(first)
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"

    assert (await game.wallet())["cash"] == 10_000 - 1_000 + 300
    for transaction_id in (bet_id, win_id, other_bet, rollback_id):
        assert len(await postings(db_pool, transaction_id)) == 2  # one posting of two entries
        assert len(await wallet_events(api, transaction_id)) == 1


async def test_the_same_transaction_id_with_other_content_is_a_duplicate(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 5_000)
    other = Game(api, (await funded_customer(api, 5_000))["id"])
    bet_id = new_id("bet")
    ok(await game.bet(1_000, tx=bet_id))

    other_amount = refused(await game.bet(1_001, tx=bet_id), 409, "duplicate_transaction")
    other_customer = refused(await other.bet(1_000, tx=bet_id), 409, "duplicate_transaction")
    other_type = refused(await game.win(bet_id, 10, tx=bet_id), 409, "duplicate_transaction")

    assert other_amount["balance"] == {"cash": 4_000, "bonus": 0, "total": 4_000}
    assert other_customer["balance"]["cash"] == 5_000
    assert other_type["balance"]["cash"] == 4_000
    assert (await other.wallet())["cash"] == 5_000


async def test_insufficient_funds_books_nothing_and_its_rollback_is_a_no_op(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 1_000)
    bet_id = new_id("bet")

    problem = refused(await game.bet(1_001, tx=bet_id), 402, "insufficient_funds")
    replayed = await game.bet(1_001, tx=bet_id)
    rollback = ok(await game.rollback(bet_id))

    assert problem["balance"] == {"cash": 1_000, "bonus": 0, "total": 1_000}
    assert problem["type"].endswith("/insufficient_funds") and problem["status"] == 402
    assert refused(replayed, 402, "insufficient_funds") == problem
    assert replayed.headers["idempotent-replayed"] == "true"
    assert (rollback["amount"], parts(rollback)) == (0, (0, 0))
    assert await postings(db_pool, bet_id) == []
    assert (await game.wallet())["cash"] == 1_000


async def test_twenty_concurrent_bets_on_a_balance_of_ten_take_exactly_ten(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 10 * 700)

    answers = await asyncio.gather(*(game.bet(700, round_id=new_id("r")) for _ in range(20)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 10 + [402] * 10
    assert all(answer.json()["balance"]["cash"] >= 0 for answer in answers)
    assert (await game.wallet())["cash"] == 0
    assert (await balance_of(api, game.customer_id, "EUR"))["available"] == 0


async def test_a_call_timed_out_on_the_client_and_replayed_posts_once(
    stack: Stack, api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 3_000)
    bet_id = new_id("bet")
    impatient = httpx.AsyncClient(
        base_url=stack.api_url,
        headers=dict(api.headers),
        timeout=httpx.Timeout(10, read=0.000_001),  # gives up as soon as the request is sent
    )
    async with impatient:
        with pytest.raises(httpx.ReadTimeout):
            await Game(impatient, game.customer_id).bet(1_200, tx=bet_id)

    await booked(api, game.customer_id, bet_id)  # the server took it; its answer was lost
    replayed = await game.bet(1_200, tx=bet_id)
    replay = ok(replayed)

    assert replayed.headers["idempotent-replayed"] == "true"  # the server did answer it once
    assert replay["balance"]["cash"] == 1_800
    assert replay["transaction_id"] == bet_id
    assert await postings(db_pool, bet_id) == [("customer_wallet", -1_200), ("game", 1_200)]
    assert (await game.wallet())["cash"] == 1_800


# ---------------------------------------------------------------------- rollbacks and rounds


async def test_rollback_returns_the_bet_and_its_replay_and_a_second_rollback_answer_it(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 2_000)
    bet_id, rollback_id = new_id("bet"), new_id("rb")
    ok(await game.bet(800, tx=bet_id))

    rollback = ok(await game.rollback(bet_id, tx=rollback_id))
    replay = await game.rollback(bet_id, tx=rollback_id)
    second = await game.rollback(bet_id)

    assert (rollback["amount"], parts(rollback), rollback["balance"]["cash"]) == (
        800,
        (800, 0),
        2_000,
    )
    assert ok(replay) == rollback and ok(second) == rollback
    assert second.headers["idempotent-replayed"] == "true"
    assert await postings(db_pool, rollback_id) == [("game", -800), ("customer_wallet", 800)]
    assert (await game.wallet())["cash"] == 2_000
    refused(await game.win(bet_id, 100), 409, "bet_rolled_back")


async def test_rollback_of_a_bet_never_seen_then_that_bet_then_a_win_on_it(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 2_000)
    bet_id = new_id("bet")

    rollback = ok(await game.rollback(bet_id))
    late_bet = refused(await game.bet(500, tx=bet_id), 409, "bet_rolled_back")
    win = refused(await game.win(bet_id, 900), 409, "bet_rolled_back")

    assert (rollback["amount"], parts(rollback), rollback["currency"]) == (0, (0, 0), "EUR")
    assert late_bet["balance"]["cash"] == 2_000 and win["balance"]["cash"] == 2_000
    assert (await game.wallet())["cash"] == 2_000


async def test_rollback_after_a_win_is_refused_and_a_win_on_an_unknown_bet_is_not_found(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 2_000)
    bet_id = new_id("bet")
    ok(await game.bet(500, tx=bet_id))
    ok(await game.win(bet_id, 0))  # a zero win settles the bet

    settled = refused(await game.rollback(bet_id), 409, "bet_settled")
    unknown = refused(await game.win(new_id("nobet"), 100), 404, "bet_not_found")

    assert settled["balance"] == {"cash": 1_500, "bonus": 0, "total": 1_500}
    assert unknown["balance"]["cash"] == 1_500
    assert (await game.wallet())["cash"] == 1_500


async def test_a_win_that_closes_the_round_refuses_later_bets_and_wins_in_it(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 2_000)
    round_id, first, second = new_id("round"), new_id("bet"), new_id("bet")
    ok(await game.bet(300, tx=first, round_id=round_id))
    ok(await game.bet(200, tx=second, round_id=round_id))

    ok(await game.win(first, 1_000, round_closed=True))
    late_bet = refused(await game.bet(100, round_id=round_id), 409, "round_closed")
    late_win = refused(await game.win(second, 50), 409, "round_closed")
    late_rollback = refused(await game.rollback(second), 409, "round_closed")  # settled: lost

    assert late_bet["balance"]["cash"] == 2_500 and late_win["balance"]["cash"] == 2_500
    assert late_rollback["balance"]["cash"] == 2_500
    assert (await game.wallet())["cash"] == 2_500


async def test_a_round_of_two_bets_with_one_rolled_back(api: httpx.AsyncClient) -> None:
    game = await game_for(api, 1_000)
    round_id, kept, rolled = new_id("round"), new_id("bet"), new_id("bet")
    ok(await game.bet(100, tx=kept, round_id=round_id))
    ok(await game.bet(150, tx=rolled, round_id=round_id))

    ok(await game.rollback(rolled))
    win = ok(await game.win(kept, 400, round_closed=True))

    assert win["balance"]["cash"] == 1_000 - 100 + 400
    refused(await game.win(rolled, 10), 409, "bet_rolled_back")


async def test_blocked_customer_bets_refused_wins_and_rollbacks_taken(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    game = await game_for(api, 1_000)
    won, rolled = new_id("bet"), new_id("bet")
    ok(await game.bet(100, tx=won, round_id="a"))
    ok(await game.bet(200, tx=rolled, round_id="b"))

    blocked = await ops_api.post(
        f"/v1/customers/{game.customer_id}/block", json={"reason": "self-exclusion"}
    )
    shown_blocked = (await ops_api.get(f"/v1/customers/{game.customer_id}")).json()["status"]
    bet = refused(await game.bet(50), 403, "customer_blocked")
    win = ok(await game.win(won, 500))
    rollback = ok(await game.rollback(rolled))
    unblocked = await ops_api.post(
        f"/v1/customers/{game.customer_id}/unblock", json={"reason": "appeal granted"}
    )

    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    assert bet["balance"]["cash"] == 700
    assert (win["balance"]["cash"], rollback["balance"]["cash"]) == (1_200, 1_400)
    assert unblocked.json()["status"] == "active"
    assert shown_blocked == "blocked"
    assert (await ops_api.get(f"/v1/customers/{game.customer_id}")).json()["status"] == "active"
    ok(await game.bet(50))
    trail = (await ops_api.get("/v1/ops/audit-log", params={"limit": 5})).json()["data"]
    actions = [(a["action"], a["target"]) for a in trail]
    assert ("customer.block", game.customer_id) in actions
    assert ("customer.unblock", game.customer_id) in actions
    forbidden = await api.post(f"/v1/customers/{game.customer_id}/block", json={"reason": "x"})
    assert forbidden.status_code == 403  # a payments key is no operator


async def test_a_bet_in_a_currency_without_a_wallet_is_wrong_currency(
    api: httpx.AsyncClient,
) -> None:
    game = await game_for(api, 1_000)

    problem = refused(await game.bet(100, currency="USD"), 422, "wrong_currency")

    assert problem["balance"] == {"cash": 0, "bonus": 0, "total": 0}


# ---------------------------------------------------------------------- bonuses


async def test_bonus_split_wagering_and_completion_into_cash(
    api: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 30)
    granted = await game.grant(100, multiplier=2)
    assert granted.status_code == 201, granted.text
    bonus = granted.json()
    assert bonus["id"].startswith("bon_")
    assert (bonus["status"], bonus["remaining"], bonus["wagering_required"]) == ("active", 100, 200)
    bet_id = new_id("bet")

    bet = ok(await game.bet(50, tx=bet_id))
    assert (parts(bet), bet["balance"]) == ((30, 20), {"cash": 0, "bonus": 80, "total": 80})
    win = ok(await game.win(bet_id, 100))  # the bet was 30/50 cash, 20/50 bonus
    assert (parts(win), win["balance"]) == ((60, 40), {"cash": 60, "bonus": 120, "total": 180})
    assert await postings(db_pool, bet_id) == [
        ("customer_wallet", -30),
        ("customer_bonus", -20),
        ("game", 50),
    ]
    assert (await game.wallet())["wagering_remaining"] == 150

    last = new_id("bet")
    ok(await game.bet(150, tx=last))  # 60 cash, 90 bonus
    done = ok(await game.win(last, 0))

    assert done["balance"] == {"cash": 30, "bonus": 0, "total": 30}
    completed = (await api.get(f"/v1/bonuses/{bonus['id']}")).json()
    assert (completed["status"], completed["remaining"], completed["wagering_remaining"]) == (
        "completed",
        0,
        0,
    )
    events = (await api.get("/v1/events", params={"type": "bonus.completed", "limit": 100})).json()
    assert bonus["id"] in [e["data"]["object"]["id"] for e in events["data"]]
    # withdrawals take cash only: the balances show the cash wallet
    assert (await balance_of(api, game.customer_id, "EUR"))["available"] == 30


async def test_one_active_bonus_per_customer_and_currency(api: httpx.AsyncClient) -> None:
    game = await game_for(api, 0)
    first = await game.grant(100, multiplier=5)
    second = await game.grant(50, multiplier=5)

    assert first.status_code == 201, first.text
    refused(second, 409, "bonus_already_active")
    assert (await game.wallet())["bonus"] == 100


async def test_forfeit_removes_the_bonus_through_its_workflow(
    api: httpx.AsyncClient, ops_api: httpx.AsyncClient
) -> None:
    game = await game_for(api, 0)
    bonus = (await game.grant(500, multiplier=10)).json()
    ok(await game.bet(120))

    forfeited = await ops_api.post(f"/v1/bonuses/{bonus['id']}/forfeit", json={"reason": "abuse"})
    again = await ops_api.post(f"/v1/bonuses/{bonus['id']}/forfeit", json={"reason": "abuse"})

    assert forfeited.status_code == 200, forfeited.text
    assert (forfeited.json()["status"], forfeited.json()["remaining"]) == ("forfeited", 0)
    assert again.status_code == 200 and again.json() == forfeited.json()
    wallet = await game.wallet()
    assert (wallet["bonus"], wallet["wagering_remaining"]) == (0, 0)
    refused(await game.bet(1), 402, "insufficient_funds")


async def test_a_bonus_expires_by_its_timer(api: httpx.AsyncClient) -> None:
    game = await game_for(api, 0)
    bonus = (await game.grant(300, multiplier=3, seconds=1)).json()

    for _ in range(200):
        seen = (await api.get(f"/v1/bonuses/{bonus['id']}")).json()
        if seen["status"] != "active":
            break
        await asyncio.sleep(0.1)

    assert (seen["status"], seen["remaining"]) == ("expired", 0)
    assert (await game.wallet())["bonus"] == 0


# ---------------------------------------------------------------------- merchants


async def test_another_merchant_sees_no_wallet_no_bonus_and_has_its_own_transaction_ids(
    api: httpx.AsyncClient, merchant_b: httpx.AsyncClient, db_pool: AsyncConnectionPool[Any]
) -> None:
    game = await game_for(api, 1_000)
    bonus = (await game.grant(100, multiplier=1)).json()
    b_customer = await funded_customer(merchant_b, 1_000)
    b_game = Game(merchant_b, b_customer["id"])
    bet_id = new_id("bet")
    ok(await game.bet(300, tx=bet_id))

    wallet = await merchant_b.get(
        f"/v1/customers/{game.customer_id}/wallet", params={"currency": "EUR"}
    )
    missing_wallet = await merchant_b.get(
        "/v1/customers/cus_000000000000000000000000/wallet", params={"currency": "EUR"}
    )
    their_bonus = await merchant_b.get(f"/v1/bonuses/{bonus['id']}")
    missing_bonus = await merchant_b.get("/v1/bonuses/bon_000000000000000000000000")
    a_customer_under_b = await Game(merchant_b, game.customer_id).bet(10, tx=new_id("bet"))
    same_id_under_b = await b_game.bet(300, tx=bet_id)

    assert wallet.status_code == missing_wallet.status_code == 404
    assert wallet.json()["code"] == missing_wallet.json()["code"] == "not_found"
    assert their_bonus.status_code == missing_bonus.status_code == 404
    refused(a_customer_under_b, 404, "customer_not_found")
    assert ok(same_id_under_b)["balance"]["cash"] == 700  # B's own transaction, not a replay
    assert "idempotent-replayed" not in same_id_under_b.headers
    assert (await game.wallet())["cash"] == 700
    assert len(await postings(db_pool, bet_id)) == 4  # two postings: one per merchant
    report = await wallet_audit(db_pool)
    assert report.ok, report.format()
