"""What the API reads of the game wallet: the wallet view, bonuses, the booked calls.

The wallet engine writes these tables (`wallet.storage`); the API only reads them, through the
merchant's store (`MerchantStore`), whose methods name the merchant in every statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paysaga.store.sql import TableRow


@dataclass(frozen=True)
class BonusRow(TableRow):
    """A bonus, with `remaining`: its customer's bonus balance while active, else 0."""

    id: str
    customer_id: str
    status: str
    amount: int
    currency: str
    remaining: int
    wagering_required: int
    wagering_remaining: int
    expires_at: datetime
    max_bet: int | None
    created_at: datetime


@dataclass(frozen=True)
class WalletViewRow(TableRow):
    """A customer's game wallet in one currency: cash available, bonus, active wagering."""

    customer_id: str
    currency: str
    cash: int
    bonus: int
    total: int
    wagering_remaining: int


@dataclass(frozen=True)
class WalletTransactionRow(TableRow):
    """A game call booked under its transaction id: what it was, and the answer it was given."""

    seq: int
    game_provider: str
    transaction_id: str
    customer_id: str
    type: str
    outcome: str
    amount: int
    currency: str | None
    cash_part: int
    bonus_part: int
    bet_transaction_id: str | None
    round_id: str | None
    answer: dict[str, Any]
    created_at: datetime


WALLET_VIEW_SQL = """
SELECT c.id AS customer_id, %(currency)s AS currency, w.cash, w.bonus, w.cash + w.bonus AS total,
       COALESCE((SELECT b.wagering_remaining FROM bonuses b
                 WHERE b.merchant_id = c.merchant_id AND b.customer_id = c.id
                   AND b.currency = %(currency)s AND b.status = 'active'), 0)
           AS wagering_remaining
FROM customers c
CROSS JOIN LATERAL (
    SELECT COALESCE(SUM(a.posted - a.held) FILTER (WHERE a.kind = 'customer_wallet'), 0) AS cash,
           COALESCE(SUM(a.posted) FILTER (WHERE a.kind = 'customer_bonus'), 0) AS bonus
    FROM ledger_accounts a
    WHERE a.merchant_id = c.merchant_id AND a.owner_id = c.id AND a.currency = %(currency)s
      AND a.kind IN ('customer_wallet', 'customer_bonus')
) w
WHERE c.id = %(customer_id)s AND c.merchant_id = %(merchant_id)s
"""

BONUS_SQL = """
SELECT b.id, b.customer_id, b.status, b.amount, b.currency,
       CASE WHEN b.status = 'active' THEN COALESCE(a.posted, 0) ELSE 0 END AS remaining,
       b.wagering_required, b.wagering_remaining, b.expires_at, b.max_bet, b.created_at
FROM bonuses b
LEFT JOIN ledger_accounts a ON a.merchant_id = b.merchant_id AND a.owner_id = b.customer_id
    AND a.kind = 'customer_bonus' AND a.currency = b.currency
"""

# In booking order; a refused call is listed with its refusal (its answer is the problem's body).
WALLET_TRANSACTIONS_SQL = """
SELECT seq, game_provider, transaction_id, customer_id, type, outcome, amount, currency,
       cash_part, bonus_part, bet_transaction_id, round_id, answer, created_at
FROM wallet_transactions
WHERE merchant_id = %(merchant_id)s AND customer_id = %(customer_id)s
  AND (%(round_id)s::text IS NULL OR round_id = %(round_id)s)
  AND (%(game_provider)s::text IS NULL OR game_provider = %(game_provider)s)
  AND (%(after)s::bigint IS NULL OR seq > %(after)s)
ORDER BY seq
LIMIT %(limit)s
"""
