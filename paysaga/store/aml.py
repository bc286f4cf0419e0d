"""The reads of the AML monitoring rules: a merchant's rules and a customer's recent activity."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from risk.aml import ComplianceRules, WithdrawalFacts

_SINCE_LAST_WITHDRAWAL = """
WITH last AS (
    SELECT COALESCE(MAX(created_at), '-infinity'::timestamptz) AS at FROM payments
    WHERE merchant_id = %(m)s AND customer_id = %(c)s AND kind = 'withdrawal'
      AND id <> %(p)s AND status NOT IN ('failed', 'canceled')
)
SELECT
  (SELECT COALESCE(SUM(amount), 0) FROM payments, last
   WHERE merchant_id = %(m)s AND customer_id = %(c)s AND kind = 'deposit' AND currency = %(cur)s
     AND status = 'succeeded' AND created_at > last.at),
  (SELECT COALESCE(SUM(amount), 0) FROM wallet_bets, last
   WHERE merchant_id = %(m)s AND customer_id = %(c)s AND currency = %(cur)s
     AND status = 'settled' AND created_at > last.at)
"""

_RECENT_DEPOSITS = """
SELECT amount, currency, created_at > now() - interval '24 hours' FROM payments
WHERE merchant_id = %(m)s AND customer_id = %(c)s AND kind = 'deposit'
  AND status NOT IN ('failed', 'canceled') AND created_at > now() - interval '30 days'
"""


async def compliance_rules(pool: AsyncConnectionPool, merchant_id: str) -> ComplianceRules:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT compliance FROM merchants WHERE id = %s", (merchant_id,))
        row = await cur.fetchone()
    return ComplianceRules.from_stored(row[0] if row else None)


async def set_compliance_rules(
    pool: AsyncConnectionPool, merchant_id: str, rules: dict[str, Any]
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE merchants SET compliance = compliance || %s WHERE id = %s",
            (Jsonb(rules), merchant_id),
        )


async def withdrawal_facts(
    pool: AsyncConnectionPool, merchant_id: str, customer_id: str, currency: str, payment_id: str
) -> WithdrawalFacts:
    params = {"m": merchant_id, "c": customer_id, "cur": currency, "p": payment_id}
    async with pool.connection() as conn:
        cur = await conn.execute(_SINCE_LAST_WITHDRAWAL, params)
        sums = await cur.fetchone()
        assert sums is not None
        cur = await conn.execute(_RECENT_DEPOSITS, params)
        recent = await cur.fetchall()
    return WithdrawalFacts(
        int(sums[0]),
        int(sums[1]),
        [(amount, currency) for amount, currency, last_day in recent if last_day],
        [(amount, currency) for amount, currency, _ in recent],
    )


async def record_review_reasons(
    pool: AsyncConnectionPool, payment_id: str, reasons: list[str]
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE payments SET review_reasons = %s WHERE id = %s", (Jsonb(reasons), payment_id)
        )
