"""The service's checks in the ledger audit: what the ledger alone cannot know.

The ledger engine knows nothing of the service's tables, so the checks that compare its entries
with the service's records live here and run in the ledger's audit snapshot (`AuditQuery`).
`paysaga ledger audit` runs the ledger's checks and these.

Each part above the payments service that keeps tables of its own registers its checks here, under
the entry-point group `paysaga.audit_checks` (the wallet: `wallet.audit:WALLET_AUDIT_CHECKS` in
`pyproject.toml`), as provider adapters register under `paysaga.providers`: the service reads
them without importing the parts that stand on it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ledger.engine import Ledger
from ledger.models import AuditQuery, AuditReport

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

# Money rule 3's debt is never made up: every entry on a customer's receivable belongs to one of
# that customer's disputes (its withdrawal, or its reinstatement) or deposits (a repayment), or
# reverses one; and each dispute's withdrawal booked exactly the receivable its row shows. Ledger
# keys: `<deposit>:dispute:<dispute>:withdraw|reinstate`, `<deposit>:credit`.
RECEIVABLES_COVERED = AuditQuery(
    name="receivables covered by disputes and repayments",
    sql="""
    WITH entry AS (
        SELECT e.id, a.merchant_id, a.owner_id, a.currency,
               COALESCE(o.idempotency_key, t.idempotency_key) AS key
        FROM ledger_entries e
        JOIN ledger_accounts a ON a.id = e.account_id
        JOIN ledger_transactions t ON t.id = e.transaction_id
        LEFT JOIN ledger_transactions o ON o.id = t.reverses_transaction_id
        WHERE a.kind = 'customer_receivable'
    )
    SELECT 'entry', entry.id::text, entry.owner_id, entry.key FROM entry
    WHERE NOT EXISTS (
        SELECT 1 FROM disputes d
        WHERE d.payment_id = split_part(entry.key, ':', 1) AND d.merchant_id = entry.merchant_id
          AND d.customer_id = entry.owner_id AND d.currency = entry.currency
          AND entry.key IN (d.payment_id || ':dispute:' || d.id || ':withdraw',
                            d.payment_id || ':dispute:' || d.id || ':reinstate'))
      AND NOT EXISTS (
        SELECT 1 FROM payments p
        WHERE p.id = split_part(entry.key, ':', 1) AND entry.key = p.id || ':credit'
          AND p.kind = 'deposit' AND p.merchant_id = entry.merchant_id
          AND p.customer_id = entry.owner_id AND p.currency = entry.currency)
    UNION ALL
    SELECT 'dispute', d.id, d.customer_id,
           d.receivable || ' recorded, ' || COALESCE(-SUM(e.amount), 0) || ' booked'
    FROM disputes d
    LEFT JOIN ledger_transactions t
        ON t.idempotency_key = d.payment_id || ':dispute:' || d.id || ':withdraw'
    LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.account_id IN (
        SELECT a.id FROM ledger_accounts a
        WHERE a.merchant_id = d.merchant_id AND a.owner_id = d.customer_id
          AND a.kind = 'customer_receivable' AND a.currency = d.currency)
    WHERE d.withdrawn_at IS NOT NULL
    GROUP BY d.id, d.customer_id, d.receivable
    HAVING COUNT(t.id) = 0 OR d.receivable <> COALESCE(-SUM(e.amount), 0)
    ORDER BY 1, 2
    """,
    found="receivable entries or disputes (what, id, customer, key or amounts)",
)

# Each finished dispute moved money as its status says: withdrawn once, and reinstated once if
# (and only if) it was won.
DISPUTES_BOOKED_AS_STATED = AuditQuery(
    name="disputes booked as their status says",
    sql="""
    SELECT d.id, d.customer_id, d.status, w.id, r.id FROM disputes d
    LEFT JOIN ledger_transactions w
        ON w.idempotency_key = d.payment_id || ':dispute:' || d.id || ':withdraw'
    LEFT JOIN ledger_transactions r
        ON r.idempotency_key = d.payment_id || ':dispute:' || d.id || ':reinstate'
    WHERE d.status IN ('won', 'lost')
      AND (w.id IS NULL OR d.withdrawn_at IS NULL OR (r.id IS NOT NULL) <> (d.status = 'won'))
    ORDER BY 1
    """,
    found="disputes (id, customer, status, withdrawal, reinstatement)",
)

AUDIT_CHECKS_GROUP = "paysaga.audit_checks"

PAYMENTS_AUDIT_CHECKS = [
    FX_POSITIONS_MATCH_QUOTES,
    REFUNDS_WITHIN_DEPOSITS,
    REFUNDS_BOOKED_AS_STATED,
    RECEIVABLES_COVERED,
    DISPUTES_BOOKED_AS_STATED,
]


def registered_audit_checks() -> list[AuditQuery]:
    """The checks each part registered under `AUDIT_CHECKS_GROUP`, in the order of its name."""
    checks: list[AuditQuery] = []
    for entry in sorted(entry_points(group=AUDIT_CHECKS_GROUP), key=lambda entry: entry.name):
        checks.extend(entry.load())
    return checks


# The payments service's own checks, then every registered part's.
SERVICE_AUDIT_CHECKS = [*PAYMENTS_AUDIT_CHECKS, *registered_audit_checks()]


async def audit_books(pool: AsyncConnectionPool[Any]) -> AuditReport:
    """The ledger's audit with the service's checks, in one snapshot."""
    return await Ledger(pool).audit(SERVICE_AUDIT_CHECKS)
