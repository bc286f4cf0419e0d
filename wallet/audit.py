"""The game wallet's checks in the ledger audit: its records against the ledger's entries.

They run in the ledger's audit snapshot (`AuditQuery`, listed in `paysaga.audit`); each row a
query finds is a violation.
"""

from __future__ import annotations

from ledger.models import AuditQuery

# Each game call moved the customer's cash and bonus accounts by exactly its recorded parts (a
# bet takes them, a win or a rollback gives them), through its own ledger transaction; and no
# ledger transaction of the wallet lacks its call.
WALLET_TRANSACTIONS_MATCH_ENTRIES = AuditQuery(
    name="wallet transactions match their ledger entries",
    sql="""
    WITH moved AS (
        SELECT w.merchant_id, w.game_provider, w.transaction_id, w.type, w.cash_part,
               w.bonus_part,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'customer_wallet'), 0) AS cash,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'customer_bonus'), 0) AS bonus
        FROM wallet_transactions w
        LEFT JOIN ledger_entries e ON e.transaction_id = w.ledger_transaction_id
        LEFT JOIN ledger_accounts a ON a.id = e.account_id AND a.owner_id = w.customer_id
            AND a.merchant_id = w.merchant_id
        GROUP BY w.merchant_id, w.game_provider, w.transaction_id
    )
    SELECT merchant_id, game_provider, transaction_id, type, cash_part, bonus_part, cash, bonus
    FROM moved
    WHERE cash <> CASE WHEN type = 'bet' THEN -cash_part ELSE cash_part END
       OR bonus <> CASE WHEN type = 'bet' THEN -bonus_part ELSE bonus_part END
    UNION ALL
    SELECT NULL, NULL, t.idempotency_key, 'no wallet transaction', NULL, NULL, NULL, NULL
    FROM ledger_transactions t
    WHERE t.idempotency_key LIKE 'wallet:%'
      AND NOT EXISTS (SELECT 1 FROM wallet_transactions w WHERE w.ledger_transaction_id = t.id)
    ORDER BY 3
    """,
    found="calls (merchant, provider, transaction, type, cash part, bonus part, cash, bonus moved)",
)

# A bet ends won or rolled back, never both: no bet has a win and a rollback that returned money.
NO_BET_WON_AND_ROLLED_BACK = AuditQuery(
    name="no bet both won and rolled back",
    sql="""
    SELECT merchant_id, game_provider, bet_transaction_id FROM wallet_transactions
    WHERE outcome = 'accepted' AND type IN ('win', 'rollback')
    GROUP BY merchant_id, game_provider, bet_transaction_id
    HAVING bool_or(type = 'win') AND bool_or(type = 'rollback' AND ledger_transaction_id IS NOT NULL)
    UNION ALL
    SELECT merchant_id, game_provider, transaction_id FROM wallet_bets
    WHERE status = 'rolled_back' AND won > 0
    ORDER BY 1, 2, 3
    """,
    found="bets (merchant, provider, transaction)",
)

# One active bonus per customer and currency (the partial unique index says so too), and bonus
# money only while a bonus is active: with none, the customer's bonus balance is 0; with one, it
# is that bonus's `remaining`.
ONE_ACTIVE_BONUS = AuditQuery(
    name="at most one active bonus per customer and currency",
    sql="""
    SELECT merchant_id, customer_id, currency, COUNT(*) FROM bonuses WHERE status = 'active'
    GROUP BY merchant_id, customer_id, currency HAVING COUNT(*) > 1
    ORDER BY 1, 2, 3
    """,
    found="customers (merchant, customer, currency, active bonuses)",
)
BONUS_BALANCES_BELONG_TO_ACTIVE_BONUSES = AuditQuery(
    name="bonus balances belong to an active bonus",
    sql="""
    SELECT a.merchant_id, a.owner_id, a.currency, a.posted FROM ledger_accounts a
    WHERE a.kind = 'customer_bonus' AND a.posted <> 0
      AND NOT EXISTS (
          SELECT 1 FROM bonuses b
          WHERE b.merchant_id = a.merchant_id AND b.customer_id = a.owner_id
            AND b.currency = a.currency AND b.status = 'active')
    ORDER BY 1, 2, 3
    """,
    found="bonus accounts (merchant, customer, currency, balance)",
)

WALLET_AUDIT_CHECKS = [
    WALLET_TRANSACTIONS_MATCH_ENTRIES,
    NO_BET_WON_AND_ROLLED_BACK,
    ONE_ACTIVE_BONUS,
    BONUS_BALANCES_BELONG_TO_ACTIVE_BONUSES,
]
