"""Fixtures of the wallet tests: the engine on the session database, merchants and customers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from ledger.models import AccountKind, AuditReport, LineSpec
from paysaga.store import Store
from wallet.audit import WALLET_AUDIT_CHECKS
from wallet.engine import WalletEngine


async def wallet_audit(pool: AsyncConnectionPool[Any]) -> AuditReport:
    """The ledger's own checks and the wallet's, over the whole session database.

    The service's other checks (FX quotes, disputes) are left out: ledger tests of the session
    post raw conversions and receivables that only those checks would question.
    """
    return await Ledger(pool).audit(WALLET_AUDIT_CHECKS)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(postgres_url: str) -> AsyncIterator[WalletEngine]:
    """A wallet engine of its own for the test (its writers stop with it)."""
    async with WalletEngine(postgres_url, writers=4) as wallet_engine:
        yield wallet_engine


@dataclass
class Books:
    """Merchants and customers of one test, funded through the real ledger."""

    pool: AsyncConnectionPool[Any]
    ledger: Ledger

    async def merchant(self) -> str:
        merchant_id = f"mer_w_{uuid.uuid4().hex[:12]}"
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO merchants (id, name) VALUES (%s, %s)", (merchant_id, merchant_id)
            )
        return merchant_id

    async def customer(self, merchant_id: str, cash: int = 0, currency: str = "EUR") -> str:
        """A new customer of the merchant with a cash wallet holding `cash`."""
        customer_id = f"cus_{uuid.uuid4().hex[:24]}"
        await Store(self.pool).create_customer(
            merchant_id, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
        )
        await self.deposit(merchant_id, customer_id, cash, currency)
        return customer_id

    async def deposit(self, merchant_id: str, customer_id: str, cash: int, currency: str) -> None:
        """Credit the customer's cash wallet (creating it), as a succeeded deposit would."""
        if cash == 0:
            await self.ledger.account(
                merchant_id, customer_id, AccountKind.customer_wallet, currency
            )
            return
        await self.ledger.post_transaction(
            f"deposit-{uuid.uuid4()}",
            [
                LineSpec(merchant_id, "psp", AccountKind.provider_clearing, currency, -cash),
                LineSpec(merchant_id, customer_id, AccountKind.customer_wallet, currency, cash),
            ],
        )

    async def balance(
        self, merchant_id: str, owner_id: str, kind: AccountKind, currency: str = "EUR"
    ) -> int:
        return (await self.ledger.balance(merchant_id, owner_id, kind, currency)).posted


@pytest_asyncio.fixture(loop_scope="session")
async def books(db_pool: AsyncConnectionPool[Any]) -> Books:
    return Books(db_pool, Ledger(db_pool))
