"""The Bonus workflow in-process on a worker of its own, its activity on the real wallet engine.

Used by tests/workflows/test_bonus.py and by the history capture of tests/histories.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.wallet import WalletActivities
from api.routes.wallet import start_bonus_timer
from api.schemas import Bonus
from ledger.engine import Ledger
from ledger.models import AccountKind, LineSpec
from paysaga.store import Store
from wallet.engine import WalletEngine
from wallet.models import Bet, GrantBonus, Win
from workflows.bonus import BonusWorkflow


class BonusHarness:
    """A merchant of its own, customers, and bonuses granted as the API grants them."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        pool: AsyncConnectionPool[Any],
        database_url: str,
        queue: str,
    ) -> None:
        self.env, self.pool, self.queue = env, pool, queue
        self.engine = WalletEngine(database_url, writers=1)
        self.ledger = Ledger(pool)
        self.merchant_id = f"mer_b_{uuid.uuid4().hex[:12]}"

    @contextlib.asynccontextmanager
    async def workers(self) -> AsyncIterator[None]:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO merchants (id, name) VALUES (%s, %s)", (self.merchant_id, "bonus test")
            )
        async with (
            self.engine,
            Worker(
                self.env.client,
                task_queue=self.queue,
                workflows=[BonusWorkflow],
                activities=[WalletActivities(self.engine).end_bonus],
            ),
        ):
            yield

    async def customer(self, cash: int = 0) -> str:
        customer_id = f"cus_{uuid.uuid4().hex[:24]}"
        await Store(self.pool).create_customer(
            self.merchant_id, customer_id, customer_id, "Ada Lovelace", date(1990, 12, 10), "DE"
        )
        if cash:
            await self.ledger.post_transaction(
                f"seed-{customer_id}",
                [
                    LineSpec(self.merchant_id, "psp", AccountKind.provider_clearing, "EUR", -cash),
                    LineSpec(
                        self.merchant_id, customer_id, AccountKind.customer_wallet, "EUR", cash
                    ),
                ],
            )
        return customer_id

    async def grant_without_timer(self, customer_id: str, amount: int, lasts: timedelta) -> Bonus:
        """Grant a bonus in the wallet only (its workflow not started)."""
        expires_at = await self.env.get_current_time() + lasts
        bonus_id = f"bon_{uuid.uuid4().hex[:24]}"
        call = GrantBonus(self.merchant_id, customer_id, bonus_id, amount, "EUR", 10, expires_at)
        decision = await self.engine.submit(call)
        assert decision.accepted, decision.answer
        return Bonus.model_validate(decision.answer)

    async def grant(
        self, customer_id: str, amount: int, multiplier: int, lasts: timedelta
    ) -> WorkflowHandle[Any, str]:
        """Grant a bonus and start its workflow, as `POST /v1/customers/{id}/bonuses` does."""
        # The server's clock, which earlier tests of the session may have skipped ahead.
        expires_at = await self.env.get_current_time() + lasts
        bonus_id = f"bon_{uuid.uuid4().hex[:24]}"
        call = GrantBonus(
            self.merchant_id, customer_id, bonus_id, amount, "EUR", multiplier, expires_at
        )
        decision = await self.engine.submit(call)
        assert decision.accepted, decision.answer
        handle = await start_bonus_timer(
            self.env.client, self.queue, self.merchant_id, Bonus.model_validate(decision.answer)
        )
        assert handle is not None
        return handle  # started through the environment's client: its result() skips time

    async def play(self, customer_id: str, amount: int, win: int) -> None:
        """A bet and its win (the bet settles, counting towards wagering)."""
        bet_id = f"b-{uuid.uuid4().hex[:12]}"
        bet = Bet(self.merchant_id, customer_id, "prov", bet_id, "g", bet_id, amount, "EUR")
        assert (await self.engine.submit(bet)).accepted
        paid = Win(self.merchant_id, customer_id, "prov", f"w-{bet_id}", bet_id, win)
        assert (await self.engine.submit(paid)).accepted

    async def bonus(self, bonus_id: str) -> tuple[str, int]:
        """The bonus's status, and its customer's bonus balance."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT b.status, COALESCE(a.posted, 0) FROM bonuses b"
                " LEFT JOIN ledger_accounts a ON a.merchant_id = b.merchant_id"
                " AND a.owner_id = b.customer_id AND a.kind = 'customer_bonus'"
                " AND a.currency = b.currency WHERE b.id = %s",
                (bonus_id,),
            )
            row = await cur.fetchone()
        assert row is not None
        return str(row[0]), int(row[1])

    async def funding(self) -> int:
        """The merchant's bonus funding balance (what its bonuses cost it so far)."""
        balance = await self.ledger.balance(
            self.merchant_id, "house", AccountKind.bonus_funding, "EUR"
        )
        return balance.posted
