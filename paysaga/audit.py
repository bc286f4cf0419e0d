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

SERVICE_AUDIT_CHECKS = [FX_POSITIONS_MATCH_QUOTES, *WALLET_AUDIT_CHECKS]


async def audit_books(pool: AsyncConnectionPool[Any]) -> AuditReport:
    """The ledger's audit with the service's checks, in one snapshot."""
    return await Ledger(pool).audit(SERVICE_AUDIT_CHECKS)
