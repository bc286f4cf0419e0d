"""The game wallet: its calls and their answers, bets, tombstones, closed rounds, bonuses.

Every table carries the merchant: a game provider's transaction id is unique per merchant and
game provider, whatever the customer. Customers gain a status: a blocked one places no bets.

The per-call tables (wallet_transactions, wallet_bets, wallet_tombstones, wallet_rounds) have no
foreign keys: only the wallet engine writes them, for customers it has just read in the same
transaction, and a foreign key check per row (a KEY SHARE lock on the merchant's and the
customer's rows) made a batch's writes cost about twice as much (measured on this schema).

Revision ID: 0009_wallet
Revises: 0008_merchants
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_wallet"
down_revision: str | None = "0008_merchants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE customers ADD COLUMN status text NOT NULL DEFAULT 'active'"
        " CONSTRAINT ck_customers_status CHECK (status IN ('active', 'blocked'))"
    )

    # One row per game call taken or refused under its transaction id: the request's hash and
    # the answer, for replays; what it moved on the customer's cash and bonus accounts, and the
    # ledger transaction that moved it, for the audit.
    op.execute(
        """
        CREATE TABLE wallet_transactions (
            merchant_id text NOT NULL,
            game_provider text NOT NULL,
            transaction_id text NOT NULL,
            customer_id text NOT NULL,
            type text NOT NULL CHECK (type IN ('bet', 'win', 'rollback')),
            request_hash text NOT NULL,
            outcome text NOT NULL,
            answer jsonb NOT NULL,
            amount bigint NOT NULL CHECK (amount >= 0),
            currency text,
            cash_part bigint NOT NULL DEFAULT 0 CHECK (cash_part >= 0),
            bonus_part bigint NOT NULL DEFAULT 0 CHECK (bonus_part >= 0),
            bet_transaction_id text,
            round_id text,
            ledger_transaction_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, game_provider, transaction_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_wallet_transactions_ledger ON wallet_transactions (ledger_transaction_id)"
        " WHERE ledger_transaction_id IS NOT NULL"
    )

    # A bet's state: what it took from cash and bonus, its wins, its rollback.
    op.execute(
        """
        CREATE TABLE wallet_bets (
            merchant_id text NOT NULL,
            game_provider text NOT NULL,
            transaction_id text NOT NULL,
            customer_id text NOT NULL,
            currency text NOT NULL,
            game_id text NOT NULL,
            round_id text NOT NULL,
            amount bigint NOT NULL CHECK (amount > 0),
            cash_part bigint NOT NULL CHECK (cash_part >= 0),
            bonus_part bigint NOT NULL CHECK (bonus_part >= 0),
            status text NOT NULL
                CHECK (status IN ('open', 'settled', 'rolled_back', 'refused')),
            won bigint NOT NULL DEFAULT 0 CHECK (won >= 0),
            returned_to_bonus bigint NOT NULL DEFAULT 0
                CHECK (returned_to_bonus >= 0 AND returned_to_bonus <= bonus_part),
            rollback_transaction_id text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, game_provider, transaction_id),
            CONSTRAINT ck_wallet_bets_parts CHECK (
                (status = 'refused' AND cash_part = 0 AND bonus_part = 0)
                OR (status <> 'refused' AND cash_part + bonus_part = amount)
            )
        )
        """
    )

    # A rollback that came before its bet: the bet is refused if it ever arrives.
    op.execute(
        """
        CREATE TABLE wallet_tombstones (
            merchant_id text NOT NULL,
            game_provider text NOT NULL,
            bet_transaction_id text NOT NULL,
            customer_id text NOT NULL,
            rollback_transaction_id text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, game_provider, bet_transaction_id)
        )
        """
    )

    # The rounds a win closed (an open round has no row): no bet and no further win in them.
    op.execute(
        """
        CREATE TABLE wallet_rounds (
            merchant_id text NOT NULL,
            game_provider text NOT NULL,
            customer_id text NOT NULL,
            round_id text NOT NULL,
            closed_by_transaction_id text NOT NULL,
            closed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, game_provider, customer_id, round_id)
        )
        """
    )

    # Bonuses; while active, the remaining amount is the customer's bonus account's balance.
    op.execute(
        """
        CREATE TABLE bonuses (
            id text PRIMARY KEY,
            merchant_id text NOT NULL REFERENCES merchants (id),
            customer_id text NOT NULL REFERENCES customers (id),
            currency text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('active', 'completed', 'expired', 'forfeited')),
            amount bigint NOT NULL CHECK (amount > 0),
            wagering_required bigint NOT NULL CHECK (wagering_required >= 0),
            wagering_remaining bigint NOT NULL
                CHECK (wagering_remaining >= 0 AND wagering_remaining <= wagering_required),
            expires_at timestamptz NOT NULL,
            ended_reason text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_bonuses_one_active ON bonuses (merchant_id, customer_id, currency)"
        " WHERE status = 'active'"
    )
    op.execute("CREATE INDEX ix_bonuses_merchant_customer ON bonuses (merchant_id, customer_id)")


def downgrade() -> None:
    op.execute("DROP TABLE bonuses")
    op.execute("DROP TABLE wallet_rounds")
    op.execute("DROP TABLE wallet_tombstones")
    op.execute("DROP TABLE wallet_bets")
    op.execute("DROP TABLE wallet_transactions")
    op.execute("ALTER TABLE customers DROP COLUMN status")
