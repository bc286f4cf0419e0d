"""Responsible gambling: self-exclusion, deposit and loss limits, their audit (issue 27).

- `customers.self_excluded_until`: null, or the end of the customer's self-exclusion
  (9999-12-31 for a permanent one); only ever moved later.
- `customer_limits`: one row per customer and currency; `limits` the limits in force
  `{deposit: {day, week, month}, loss: {...}}` (minor units, null: none), `pending` the raised
  or removed ones with their `effective_at` (`{deposit: {day: {amount, effective_at}}}`).
- `customer_limit_changes`: every change, who made it, when, the limits before and after.
- `deposit_reservations`: a deposit counted against the deposit limits from the moment it
  passed them (written under the customer's row lock, before its payment row exists).

Revision ID: 0022_responsible_gambling
Revises: 0020_wallet_bonus_rules
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_responsible_gambling"
down_revision: str | None = "0020_wallet_bonus_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN self_excluded_until timestamptz")
    op.execute(
        """
        CREATE TABLE customer_limits (
            merchant_id text NOT NULL REFERENCES merchants(id),
            customer_id text NOT NULL REFERENCES customers(id),
            currency text NOT NULL,
            limits jsonb NOT NULL,
            pending jsonb NOT NULL DEFAULT '{}'::jsonb,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, customer_id, currency)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE customer_limit_changes (
            id bigserial PRIMARY KEY,
            merchant_id text NOT NULL,
            customer_id text NOT NULL,
            currency text NOT NULL,
            actor text NOT NULL,
            key_name text NOT NULL,
            old jsonb,
            new jsonb NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_customer_limit_changes_customer"
        " ON customer_limit_changes (merchant_id, customer_id, changed_at)"
    )
    op.execute(
        """
        CREATE TABLE deposit_reservations (
            payment_id text PRIMARY KEY,
            merchant_id text NOT NULL,
            customer_id text NOT NULL,
            currency text NOT NULL,
            amount bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_deposit_reservations_customer"
        " ON deposit_reservations (merchant_id, customer_id, currency, created_at)"
    )
    # The loss limit sums a customer's bets of the last 30 days at each batch that needs it.
    op.execute(
        "CREATE INDEX ix_wallet_bets_customer_created"
        " ON wallet_bets (merchant_id, customer_id, currency, created_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_wallet_bets_customer_created")
    op.execute("DROP TABLE deposit_reservations")
    op.execute("DROP TABLE customer_limit_changes")
    op.execute("DROP TABLE customer_limits")
    op.execute("ALTER TABLE customers DROP COLUMN self_excluded_until")
