"""The Hub88-style adapter, certification style: the aggregator's own requests, signed, against
the real wallet engine and PostgreSQL; each answer is read as the aggregator reads it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from tests.wallet.conftest import Books
from wallet.adapters import hub88
from wallet.adapters.hub88 import Session
from wallet.adapters.hub88_app import Hub88Config, hub88_router
from wallet.engine import WalletEngine

pytestmark = pytest.mark.asyncio(loop_scope="session")

EUR = 1_000  # Hub88 units per euro cent (100,000 per euro)


def key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


AGGREGATOR_KEY, AGGREGATOR_PUBLIC = key_pair()
OPERATOR_KEY, OPERATOR_PUBLIC = key_pair()


class StaticSessions:
    def __init__(self) -> None:
        self.by_token: dict[str, Session] = {}

    async def session(self, token: str) -> Session | None:
        return self.by_token.get(token)


class Aggregator:
    """Hub88 calling the operator for one player: signed requests, verified answers."""

    def __init__(self, client: httpx.AsyncClient, user: str, token: str) -> None:
        self.client, self.user, self.token = client, user, token

    async def call(
        self, path: str, signed_by: bytes = AGGREGATOR_KEY, **fields: Any
    ) -> dict[str, Any]:
        body = {"user": self.user, "request_uuid": str(uuid.uuid4()), "token": self.token, **fields}
        raw = json.dumps(body).encode()
        headers = {hub88.SIGNATURE_HEADER: hub88.sign(raw, signed_by)}
        response = await self.client.post(path, content=raw, headers=headers)
        assert response.status_code == 200, response.text
        signature = response.headers[hub88.SIGNATURE_HEADER]
        assert hub88.verify(response.content, signature, OPERATOR_PUBLIC)
        answer: dict[str, Any] = response.json()
        assert answer["request_uuid"] == body["request_uuid"] and answer["user"] == self.user
        return answer

    async def bet(self, tx: str, cents: int, round_id: str = "r1", **extra: Any) -> dict[str, Any]:
        return await self.call(
            "/transaction/bet",
            transaction_uuid=tx,
            round=round_id,
            game_code="hub88_book",
            currency="EUR",
            amount=cents * EUR,
            **extra,
        )

    async def win(self, tx: str, bet: str | None, cents: int, **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"reference_transaction_uuid": bet} if bet else {}
        return await self.call(
            "/transaction/win",
            transaction_uuid=tx,
            game_code="hub88_book",
            currency="EUR",
            amount=cents * EUR,
            **fields,
            **extra,
        )

    async def rollback(self, tx: str, bet: str) -> dict[str, Any]:
        return await self.call(
            "/transaction/rollback", transaction_uuid=tx, reference_transaction_uuid=bet
        )


@pytest_asyncio.fixture(loop_scope="session")
async def casino(
    engine: WalletEngine, db_pool: AsyncConnectionPool[Any], books: Books
) -> AsyncIterator[tuple[str, StaticSessions, httpx.AsyncClient]]:
    merchant_id = await books.merchant()
    sessions = StaticSessions()
    config = Hub88Config(merchant_id, AGGREGATOR_PUBLIC, OPERATOR_KEY, sessions)
    app = FastAPI()
    app.include_router(hub88_router(config, engine, db_pool))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://operator") as client:
        yield merchant_id, sessions, client


async def player(casino: Any, books: Books, cents: int) -> Aggregator:
    merchant_id, sessions, client = casino
    customer_id = await books.customer(merchant_id, cash=cents)
    token = str(uuid.uuid4())
    sessions.by_token[token] = Session(customer_id, "EUR")
    return Aggregator(client, customer_id, token)


def tx() -> str:
    return str(uuid.uuid4())


async def test_balance_signature_and_token(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 2_500)

    balance = await hub.call("/user/balance", game_code="hub88_book")
    forged = await hub.call("/user/balance", signed_by=OPERATOR_KEY)
    hub.token = "expired-or-unknown"
    unknown = await hub.call("/user/balance")

    assert (balance["status"], balance["balance"], balance["currency"]) == (
        "RS_OK",
        2_500 * EUR,
        "EUR",
    )
    assert forged["status"] == "RS_ERROR_INVALID_SIGNATURE" and "balance" not in forged
    assert unknown["status"] == "RS_ERROR_INVALID_TOKEN"


async def test_duplicate_transaction(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 1_000)
    bet_id = tx()

    first = await hub.bet(bet_id, 300)
    again = await hub.bet(bet_id, 300)
    other = await hub.bet(bet_id, 301)

    assert (first["status"], first["balance"]) == ("RS_OK", 700 * EUR)
    assert again == {**first, "request_uuid": again["request_uuid"]}  # booked once
    assert (other["status"], other["balance"]) == ("RS_ERROR_DUPLICATE_TRANSACTION", 700 * EUR)


async def test_insufficient_funds_with_balance(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 500)

    refused = await hub.bet(tx(), 501)

    assert (refused["status"], refused["balance"]) == ("RS_ERROR_NOT_ENOUGH_MONEY", 500 * EUR)


async def test_rollback_before_bet(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 1_000)
    bet_id = tx()

    rolled_back = await hub.rollback(tx(), bet_id)
    late_bet = await hub.bet(bet_id, 200)
    late_win = await hub.win(tx(), bet_id, 900)

    assert (rolled_back["status"], rolled_back["balance"]) == ("RS_OK", 1_000 * EUR)
    assert (late_bet["status"], late_bet["balance"]) == (
        "RS_ERROR_TRANSACTION_ROLLED_BACK",
        1_000 * EUR,
    )
    assert late_win["status"] == "RS_ERROR_TRANSACTION_ROLLED_BACK"


async def test_win_on_a_closed_round(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 1_000)
    first, second = tx(), tx()
    await hub.bet(first, 100, round_id="round-7")
    await hub.bet(second, 100, round_id="round-7")

    closing = await hub.win(tx(), first, 400, round_closed=True)
    late_win = await hub.win(tx(), second, 50)
    late_rollback = await hub.rollback(tx(), second)
    late_bet = await hub.bet(tx(), 10, round_id="round-7")

    assert (closing["status"], closing["balance"]) == ("RS_OK", 1_200 * EUR)
    assert [late_win["status"], late_rollback["status"], late_bet["status"]] == [
        "RS_ERROR_UNKNOWN"
    ] * 3
    assert late_bet["balance"] == 1_200 * EUR


async def test_user_disabled(casino: Any, books: Books, db_pool: AsyncConnectionPool[Any]) -> None:
    hub = await player(casino, books, 1_000)
    bet_id = tx()
    await hub.bet(bet_id, 100)
    async with db_pool.connection() as conn:
        await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = %s", (hub.user,))

    refused = await hub.bet(tx(), 100)
    won = await hub.win(tx(), bet_id, 300)  # money already at stake is still paid

    assert (refused["status"], refused["balance"]) == ("RS_ERROR_USER_DISABLED", 900 * EUR)
    assert (won["status"], won["balance"]) == ("RS_OK", 1_200 * EUR)


async def test_promo_win_and_free_spins(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 0)
    free_bet, free_win, promo = tx(), tx(), tx()

    spin = await hub.bet(free_bet, 100, is_free=True)  # a free round takes nothing
    spin_win = await hub.win(free_win, free_bet, 250, is_free=True)
    replayed = await hub.win(free_win, free_bet, 250, is_free=True)
    prize = await hub.win(promo, None, 1_000, reward_uuid=str(uuid.uuid4()))

    assert (spin["status"], spin["balance"]) == ("RS_OK", 0)
    assert (spin_win["status"], spin_win["balance"]) == ("RS_OK", 250 * EUR)
    assert replayed["balance"] == 250 * EUR
    assert (prize["status"], prize["balance"]) == ("RS_OK", 1_250 * EUR)


async def test_malformed_requests(casino: Any, books: Books) -> None:
    hub = await player(casino, books, 1_000)

    fraction = await hub.call(
        "/transaction/bet", transaction_uuid=tx(), currency="EUR", amount=1, round="r"
    )
    missing = await hub.call("/transaction/win", transaction_uuid=tx(), amount=1_000)

    assert fraction["status"] == "RS_ERROR_WRONG_TYPES"
    assert missing["status"] == "RS_ERROR_WRONG_SYNTAX"
