"""Refunds of deposits: one row per refund, and the part of each deposit already promised back.

`payments.refunded_amount` is what the deposit's refunds in flight or succeeded take from it: a
refund reserves its amount there, under the payment row's lock, in the transaction that inserts
it, and gives it back in the transaction that fails it. The CHECK makes "several partial refunds
up to the deposit's amount, never more" a property of the database, whatever requests race.

Revision ID: 0010_refunds
Revises: 0009_wallet
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_refunds"
down_revision: str | None = "0009_wallet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE payments ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0"
        " CONSTRAINT ck_payments_refunded_amount"
        " CHECK (refunded_amount >= 0 AND refunded_amount <= amount)"
    )
    # A refund's id is its Refund workflow's id (`ref_...`). `requires_intervention`: its
    # provider outcome is unknown too long, an operator resolves it (money rule 7).
    op.execute(
        """
        CREATE TABLE refunds (
            id text PRIMARY KEY,
            merchant_id text NOT NULL REFERENCES merchants (id),
            payment_id text NOT NULL REFERENCES payments (id),
            customer_id text NOT NULL REFERENCES customers (id),
            amount bigint NOT NULL CHECK (amount > 0),
            currency text NOT NULL,
            status text NOT NULL CONSTRAINT ck_refunds_status
                CHECK (status IN ('processing', 'requires_intervention', 'succeeded', 'failed')),
            failure_code text,
            failure_reason text,
            reason text,
            provider text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_refunds_merchant_payment ON refunds (merchant_id, payment_id, created_at, id)"
    )
    # Reconciliation asks which payments have a refund still in flight.
    op.execute(
        "CREATE INDEX ix_refunds_in_flight ON refunds (payment_id)"
        " WHERE status IN ('processing', 'requires_intervention')"
    )


def downgrade() -> None:
    op.execute("DROP TABLE refunds")
    op.execute("ALTER TABLE payments DROP COLUMN refunded_amount")
