"""The service's checks in the ledger audit: what the ledger alone cannot know.

The ledger engine knows nothing of the service's tables, so the checks that compare its entries
with the service's records live here and run in the ledger's audit snapshot (`AuditQuery`).
`paysaga ledger audit` runs the ledger's checks and these.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from ledger.models import AuditQuery, AuditReport
from wallet.audit import WALLET_AUDIT_CHECKS

# Each conversion (a transaction moving FX position accounts that is not a reversal: reversals
# mirror their originals, checked by the ledger) moves exactly the quote's locked amounts: in,
# what converts (`source_amount - fee`) in the source currency; out, `target_amount` in the
# target currency. Its quote is the one its payment used (the payment id prefixes the key).
FX_POSITIONS_MATCH_QUOTES = AuditQuery(
    name="FX position legs match their quotes",
    sql="""
    WITH actual AS (
        SELECT t.id AS transaction_id, split_part(t.idempotency_key, ':', 1) AS payment_id,
               a.currency, SUM(e.amount) AS amount
        FROM ledger_transactions t
        JOIN ledger_entries e ON e.transaction_id = t.id
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE a.kind = 'fx_position' AND t.reverses_transaction_id IS NULL
        GROUP BY 1, 2, 3
    ), conversion AS (
        SELECT DISTINCT transaction_id, payment_id FROM actual
    ), expected AS (
        SELECT c.transaction_id, c.payment_id, q.source_currency AS currency,
               q.source_amount - q.fee AS amount
        FROM conversion c JOIN fx_quotes q ON q.used_by_payment_id = c.payment_id
        UNION ALL
        SELECT c.transaction_id, c.payment_id, q.target_currency, -q.target_amount
        FROM conversion c JOIN fx_quotes q ON q.used_by_payment_id = c.payment_id
    ), difference AS (
        (SELECT * FROM actual EXCEPT SELECT * FROM expected)
        UNION ALL
        (SELECT * FROM expected EXCEPT SELECT * FROM actual)
    )
    SELECT DISTINCT d.transaction_id, d.payment_id, q.id
    FROM difference d LEFT JOIN fx_quotes q ON q.used_by_payment_id = d.payment_id
    ORDER BY 1
    """,
    found="conversions (transaction, payment, quote)",
)

# No deposit is refunded beyond its amount: its refunds succeeded or in flight take at most its
# amount, and exactly what its row reserved for them (`payments.refunded_amount`); only deposits
# are refunded.
REFUNDS_WITHIN_DEPOSITS = AuditQuery(
    name="refunds within their deposits",
    sql="""
    WITH promised AS (
        SELECT payment_id, COALESCE(SUM(amount) FILTER (WHERE status <> 'failed'), 0) AS amount
        FROM refunds GROUP BY payment_id
    )
    SELECT p.id, p.kind, p.amount, p.refunded_amount, COALESCE(r.amount, 0)
    FROM payments p LEFT JOIN promised r ON r.payment_id = p.id
    WHERE (p.refunded_amount <> 0 OR r.payment_id IS NOT NULL)
      AND (p.kind <> 'deposit' OR COALESCE(r.amount, 0) > p.amount
           OR COALESCE(r.amount, 0) <> p.refunded_amount)
    ORDER BY 1
    """,
    found="deposits (id, kind, amount, reserved, refunds succeeded or in flight)",
)

# Each finished refund moved its customer's wallet as its status says: a succeeded one took its
# amount, once; a failed one nothing (never posted, or posted and reversed). Its ledger keys are
# `<deposit id>:<refund id>:<step>` (domain.refunds.refund_key_prefix).
REFUNDS_BOOKED_AS_STATED = AuditQuery(
    name="refunds booked as their status says",
    sql="""
    SELECT r.id, r.status, r.amount, COALESCE(SUM(e.amount), 0) AS wallet_moved
    FROM refunds r
    LEFT JOIN ledger_transactions t
        ON split_part(t.idempotency_key, ':', 1) = r.payment_id
       AND split_part(t.idempotency_key, ':', 2) = r.id
    LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.account_id IN (
        SELECT a.id FROM ledger_accounts a
        WHERE a.merchant_id = r.merchant_id AND a.owner_id = r.customer_id
          AND a.kind = 'customer_wallet' AND a.currency = r.currency)
    WHERE r.status IN ('succeeded', 'failed')
    GROUP BY r.id, r.status, r.amount
    HAVING COALESCE(SUM(e.amount), 0)
        <> CASE WHEN r.status = 'succeeded' THEN -r.amount ELSE 0 END
    ORDER BY 1
    """,
    found="refunds (id, status, amount, wallet moved)",
)

SERVICE_AUDIT_CHECKS = [
    FX_POSITIONS_MATCH_QUOTES,
    REFUNDS_WITHIN_DEPOSITS,
    REFUNDS_BOOKED_AS_STATED,
    *WALLET_AUDIT_CHECKS,
]


async def audit_books(pool: AsyncConnectionPool[Any]) -> AuditReport:
    """The ledger's audit with the service's checks, in one snapshot."""
    return await Ledger(pool).audit(SERVICE_AUDIT_CHECKS)
