"""Disputes (chargebacks) of deposits: one row per provider dispute, kept by its Dispute saga.

A dispute's id is its Dispute workflow's id (`dsp_...`), derived from the provider's dispute id,
which is unique per provider. `customer_part` is what the withdrawal takes from the customer,
fixed once when the dispute is recorded: 0 unless the deposit succeeded; for a succeeded one, the
disputed amount capped at what the deposit gave less its refunds succeeded or in flight and the
customer parts of its other disputes not won. The merchant bears the rest, and the fee.
`receivable` is the part of `customer_part` the wallet could not cover, booked as the customer's
debt. `provider_sequence` is the sequence of the newest provider event taken: older ones change
nothing. `withdrawn_at` is set with `receivable` once the withdrawal is booked (and
`dispute.created` is announced).

Revision ID: 0011_disputes
Revises: 0010_refunds
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_disputes"
down_revision: str | None = "0010_refunds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE disputes (
            id text PRIMARY KEY,
            merchant_id text NOT NULL REFERENCES merchants (id),
            payment_id text NOT NULL REFERENCES payments (id),
            customer_id text NOT NULL REFERENCES customers (id),
            provider text NOT NULL,
            provider_dispute_id text NOT NULL,
            amount bigint NOT NULL CHECK (amount > 0),
            currency text NOT NULL,
            fee bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
            reason text NOT NULL,
            status text NOT NULL CONSTRAINT ck_disputes_status CHECK (status IN
                ('needs_response', 'under_review', 'requires_intervention', 'won', 'lost')),
            evidence_due_by timestamptz NOT NULL,
            customer_part bigint NOT NULL CHECK (customer_part >= 0 AND customer_part <= amount),
            receivable bigint NOT NULL DEFAULT 0
                CHECK (receivable >= 0 AND receivable <= customer_part),
            provider_sequence integer NOT NULL DEFAULT 0,
            withdrawn_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_disputes_provider_dispute UNIQUE (provider, provider_dispute_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_disputes_merchant_created ON disputes (merchant_id, created_at, id)"
    )
    # A deposit's disputes (refunds ask whether it is disputed; reconciliation whether one is
    # still open).
    op.execute("CREATE INDEX ix_disputes_payment ON disputes (payment_id)")


def downgrade() -> None:
    op.execute("DROP TABLE disputes")
