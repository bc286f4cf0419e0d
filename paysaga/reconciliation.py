"""Reconciliation: a provider's settlement report against the ledger's provider clearing entries.

For each payment (the reference on the provider's lines and the prefix of our ledger keys) and
currency, the provider's net (charges in, payouts and refunds out) must equal the ledger's net on
that provider's clearing account. Payments still in flight are skipped: their books may lag.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.payments import PaymentStatus
from providers.base import SettlementLine

SIGN = {"charge": 1, "payout": -1, "refund": -1}


@dataclass(frozen=True)
class Mismatch:
    provider: str
    reference: str
    currency: str
    provider_amount: int
    ledger_amount: int


def provider_nets(lines: list[SettlementLine]) -> dict[tuple[str, str], int]:
    """Net money the provider moved for each (payment, currency): charges in, the rest out."""
    nets: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        nets[(line.reference, line.currency)] += SIGN[line.kind] * line.amount
    return dict(nets)


def find_mismatches(
    provider: str,
    provider_side: dict[tuple[str, str], int],
    ledger_side: dict[tuple[str, str], int],
    in_flight: set[str],
) -> list[Mismatch]:
    """Every (payment, currency) whose two nets differ, in a stable order."""
    return [
        Mismatch(provider, reference, currency, provider_side.get(key, 0), ledger_side.get(key, 0))
        for key in sorted(provider_side.keys() | ledger_side.keys())
        for reference, currency in [key]
        if reference not in in_flight and provider_side.get(key, 0) != ledger_side.get(key, 0)
    ]


class ReconciliationBooks:
    """The SQL side: the ledger's clearing nets, payments in flight, and the recorded results."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def ledger_nets(self, provider: str) -> dict[tuple[str, str], int]:
        """Net money on the provider's clearing accounts per (payment, currency), provider-signed."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT split_part(t.idempotency_key, ':', 1), a.currency, -SUM(e.amount)"
                " FROM ledger_entries e"
                " JOIN ledger_accounts a ON a.id = e.account_id"
                " JOIN ledger_transactions t ON t.id = e.transaction_id"
                " WHERE a.kind = 'provider_clearing' AND a.owner_id = %s"
                " GROUP BY 1, 2",
                (provider,),
            )
            return {(ref, cur_): int(net) for ref, cur_, net in await cur.fetchall()}

    async def payments_in_flight(self) -> set[str]:
        terminal = [s.value for s in PaymentStatus if s.is_terminal]
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM payments WHERE status <> ALL(%s)", (terminal,))
            return {row[0] for row in await cur.fetchall()}

    async def record_run(
        self, run_key: str, provider: str, lines_checked: int, mismatches: list[Mismatch]
    ) -> int:
        """Record a run and its mismatches once per run key; the number of mismatches recorded."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO reconciliation_runs (run_key, provider, lines_checked, mismatches)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (run_key) DO NOTHING RETURNING id",
                (run_key, provider, lines_checked, len(mismatches)),
            )
            row = await cur.fetchone()
            if row is None:  # a retry of a run already recorded
                cur = await conn.execute(
                    "SELECT mismatches FROM reconciliation_runs WHERE run_key = %s", (run_key,)
                )
                again = await cur.fetchone()
                return int(again[0]) if again else 0
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO reconciliation_mismatches"
                    " (run_id, provider, reference, currency, provider_amount, ledger_amount)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    # Recorded once: a later run that sees the same mismatch adds nothing.
                    " ON CONFLICT (provider, reference, currency, provider_amount, ledger_amount)"
                    " DO NOTHING",
                    [
                        (
                            row[0],
                            m.provider,
                            m.reference,
                            m.currency,
                            m.provider_amount,
                            m.ledger_amount,
                        )
                        for m in mismatches
                    ],
                )
            return len(mismatches)

    async def list_mismatches(
        self, provider: str | None, limit: int, starting_after: int | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Recorded mismatches, newest first, with the run that found them."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT m.id, m.provider, m.reference, m.currency, m.provider_amount,"
                " m.ledger_amount, m.found_at, r.run_key"
                " FROM reconciliation_mismatches m JOIN reconciliation_runs r ON r.id = m.run_id"
                " WHERE (%(provider)s::text IS NULL OR m.provider = %(provider)s)"
                " AND (%(after)s::bigint IS NULL OR m.id < %(after)s)"
                " ORDER BY m.id DESC LIMIT %(limit)s",
                {"provider": provider, "after": starting_after, "limit": limit + 1},
            )
            rows = await cur.fetchall()
        return rows[:limit], len(rows) > limit
