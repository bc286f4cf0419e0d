"""The game calls of the wallet phase: the mix of bets, wins and rollbacks, and funded customers.

The engine phase (in-process) and the HTTP load (`bench.wallet_load`) draw their calls from the
same `WalletMix`: 70% bets, 30% settlements of earlier accepted bets (27% wins, half of them
zero, 3% rollbacks), each bet its own round, closed by its win. A win or rollback names only a
bet whose acceptance came back, so that no call is refused: every non-200 answer is an error.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from ledger.batch import BatchTransaction, lock_accounts, post_batch
from ledger.models import AccountKind
from ledger.postings import create_accounts
from paysaga.personal_data import PersonalDataCipher
from paysaga.settings import get_settings
from paysaga.store import sealed_customer

GAME_PROVIDER = "bench-provider"
CURRENCY = "EUR"
MIX = {"bet": 0.70, "win": 0.27, "rollback": 0.03}
FUNDING = 100_000_000  # 1,000,000.00 EUR: no customer runs dry during a bench
HOT_FUNDING = 10_000_000_000
FUNDING_OWNER = "bench-funding"


@dataclass
class OpenBet:
    customer_id: str
    transaction_id: str
    amount: int


@dataclass
class WalletMix:
    """The next call of the mix: (kind, body of its POST /v1/wallet/<kind>s)."""

    customers: Sequence[str]
    hot_customer: str | None = None
    hot_share: float = 0.0
    seed: int = 1
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    open_bets: deque[OpenBet] = field(default_factory=deque)
    sent: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next_call(self) -> tuple[str, dict[str, Any]]:
        rng = self._rng
        self.sent += 1
        transaction_id = f"{self.run_id}-{self.sent}"
        draw = rng.random()
        kind = (
            "bet" if draw < MIX["bet"] else "win" if draw < MIX["bet"] + MIX["win"] else "rollback"
        )
        if kind == "bet" or not self.open_bets:
            customer = self._customer()
            return "bet", {
                "customer_id": customer,
                "game_provider": GAME_PROVIDER,
                "transaction_id": transaction_id,
                "game_id": "bench-slots",
                "round_id": f"round-{transaction_id}",
                "amount": rng.randint(10, 500),
                "currency": CURRENCY,
            }
        bet = self.open_bets.popleft()
        body = {
            "customer_id": bet.customer_id,
            "game_provider": GAME_PROVIDER,
            "transaction_id": transaction_id,
            "bet_transaction_id": bet.transaction_id,
        }
        if kind == "rollback":
            return "rollback", body
        amount = 0 if rng.random() < 0.5 else rng.randint(1, 2 * bet.amount)
        return "win", {**body, "amount": amount, "round_closed": True}

    def accepted(self, kind: str, body: dict[str, Any]) -> None:
        """A call was accepted: a bet becomes one a later win or rollback may name."""
        if kind == "bet":
            self.open_bets.append(
                OpenBet(body["customer_id"], body["transaction_id"], body["amount"])
            )

    def _customer(self) -> str:
        if self.hot_customer is not None and self._rng.random() < self.hot_share:
            return self.hot_customer
        return self._rng.choice(self.customers)


async def fund_customers(
    conn: AsyncConnection[Any], merchant_id: str, amounts: dict[str, int]
) -> None:
    """Credit each customer's cash wallet, as succeeded deposits would: one ledger transaction
    from the merchant's provider clearing account (customers must exist)."""
    keys = sorted(
        [(merchant_id, c, AccountKind.customer_wallet, CURRENCY) for c in amounts]
        + [(merchant_id, FUNDING_OWNER, AccountKind.provider_clearing, CURRENCY)]
    )
    accounts = {a.owner_id: a for a in await create_accounts(conn, keys)}
    legs = [(accounts[c], amount) for c, amount in amounts.items()]
    legs.append((accounts[FUNDING_OWNER], -sum(amounts.values())))
    async with conn.transaction():
        await lock_accounts(conn, [a.id for a in accounts.values()])
        await post_batch(
            conn, [BatchTransaction(f"bench-funding-{uuid.uuid4()}", tuple(legs), "bench funding")]
        )


async def create_customers(conn: AsyncConnection[Any], merchant_id: str, count: int) -> list[str]:
    """`count` customers of the merchant, straight into the customers table."""
    ids = [f"cus_bench{uuid.uuid4().hex[:20]}" for _ in range(count)]
    cipher = PersonalDataCipher.from_settings(get_settings())
    sealed = [
        sealed_customer(cipher, merchant_id, customer_id, "Ada Lovelace", date(1990, 12, 10))
        for customer_id in ids
    ]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO customers (id, merchant_id, external_id, full_name_sealed,"
            " birth_date_sealed, country)"
            " SELECT id, %s, id, name, birth, 'DE'"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) AS c(id, name, birth)",
            (merchant_id, ids, [name for name, _ in sealed], [birth for _, birth in sealed]),
        )
    return ids
