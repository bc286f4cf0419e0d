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

# The other sides of each call's posting: a bet moved its amount into the merchant's game
# account, a win or rollback its amount out of it, a credit its amount out of promotions; what a
# win or rollback did not give the customer went to the merchant's bonus funding (a bonus share
# forfeited), and nothing else did.
WALLET_POSTINGS_MATCH_AMOUNTS = AuditQuery(
    name="wallet postings move the game, promotions and funding sides by the call's amount",
    sql="""
    WITH sides AS (
        SELECT w.merchant_id, w.game_provider, w.transaction_id, w.type, w.amount, w.cash_part,
               w.bonus_part,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'game'), 0) AS game,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'promotions'), 0) AS promotions,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'bonus_funding'), 0) AS funding
        FROM wallet_transactions w
        JOIN ledger_entries e ON e.transaction_id = w.ledger_transaction_id
        JOIN ledger_accounts a ON a.id = e.account_id
        GROUP BY w.merchant_id, w.game_provider, w.transaction_id
    )
    SELECT merchant_id, game_provider, transaction_id, type, amount, game, promotions, funding
    FROM sides
    WHERE game <> CASE WHEN type = 'bet' THEN amount
                       WHEN type IN ('win', 'rollback') THEN -amount ELSE 0 END
       OR promotions <> CASE WHEN type IN ('bet', 'win', 'rollback') THEN 0 ELSE -amount END
       OR funding <> CASE WHEN type IN ('win', 'rollback') THEN amount - cash_part - bonus_part
                          ELSE 0 END
    ORDER BY 1, 2, 3
    """,
    found="calls (merchant, provider, transaction, type, amount, game, promotions, funding)",
)

# Bonus postings against the bonuses table: each bonus was granted by one posting of exactly
# its amount from the merchant's funding; a completion, expiry or forfeit posting exists only for
# a bonus that ended so, an expiry or forfeit returned to the funding what left the bonus; and no
# bonus posting names a bonus the table does not hold.
BONUS_POSTINGS_MATCH_BONUSES = AuditQuery(
    name="bonus postings match the bonuses table",
    sql="""
    WITH postings AS (
        SELECT split_part(t.idempotency_key, ':', 2) AS merchant_id,
               split_part(t.idempotency_key, ':', 3) AS bonus_id,
               split_part(t.idempotency_key, ':', 4) AS step,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'bonus_funding'), 0) AS funding,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'customer_bonus'), 0) AS bonus
        FROM ledger_transactions t
        JOIN ledger_entries e ON e.transaction_id = t.id
        JOIN ledger_accounts a ON a.id = e.account_id
        WHERE t.idempotency_key LIKE 'bonus:%'
        GROUP BY t.id
    )
    SELECT p.merchant_id, p.bonus_id, p.step, b.status, p.bonus, p.funding
    FROM postings p
    LEFT JOIN bonuses b ON b.id = p.bonus_id AND b.merchant_id = p.merchant_id
    WHERE b.id IS NULL
       OR (p.step = 'granted' AND (p.bonus <> b.amount OR p.funding <> -b.amount))
       OR (p.step IN ('completed', 'expired', 'forfeited') AND p.step <> b.status)
       OR (p.step IN ('expired', 'forfeited') AND p.funding <> -p.bonus)
    UNION ALL
    SELECT b.merchant_id, b.id, 'no grant posting', b.status, NULL, NULL FROM bonuses b
    WHERE NOT EXISTS (
        SELECT 1 FROM ledger_transactions t
        WHERE t.idempotency_key = 'bonus:' || b.merchant_id || ':' || b.id || ':granted')
    ORDER BY 1, 2, 3
    """,
    found="bonus postings (merchant, bonus, step, bonus status, bonus moved, funding moved)",
)

WALLET_AUDIT_CHECKS = [
    WALLET_TRANSACTIONS_MATCH_ENTRIES,
    NO_BET_WON_AND_ROLLED_BACK,
    ONE_ACTIVE_BONUS,
    BONUS_BALANCES_BELONG_TO_ACTIVE_BONUSES,
    WALLET_POSTINGS_MATCH_AMOUNTS,
    BONUS_POSTINGS_MATCH_BONUSES,
]
