"""Nothing grows forever: replayable answers as sent, purge indexes, dead letters, settlement windows.

Revision ID: 0006_retention
Revises: 0005_reconciliation
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_retention"
down_revision: str | None = "0005_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    # The answer of an idempotent request as the bytes sent (JSONB reorders keys): a replay of it,
    # error or not, is byte for byte the first answer.
    op.add_column("api_idempotency_keys", sa.Column("response_raw", sa.Text))
    # The retention purges delete by age.
    op.create_index("ix_api_idempotency_keys_created", "api_idempotency_keys", ["created_at"])
    op.create_index("ix_ledger_idempotency_created", "ledger_idempotency", ["created_at"])

    # Merchant notifications that were given up on, for operators to read and redeliver.
    op.create_table(
        "merchant_notification_dead_letters",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("payment_id", sa.Text, nullable=False),
        sa.Column("payment_status", sa.Text, nullable=False),
        sa.Column("failure_code", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="dead"),
        sa.Column("redeliveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("state IN ('dead', 'redelivering')", name="dead_letter_state"),
    )

    # Reconciliation by settlement window: each run reads one window of a provider's report,
    # adds it to the provider's running net per payment, and checks the payments it touched.
    op.add_column("reconciliation_runs", sa.Column("window_start", sa.DateTime(timezone=True)))
    op.add_column("reconciliation_runs", sa.Column("window_end", sa.DateTime(timezone=True)))
    op.create_table(
        "reconciliation_provider_nets",
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("needs_check", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.PrimaryKeyConstraint("provider", "reference", "currency"),
    )
    op.create_index(
        "ix_reconciliation_provider_nets_check",
        "reconciliation_provider_nets",
        ["provider"],
        postgresql_where=sa.text("needs_check"),
    )
    # A mismatch is recorded once, however many runs see it.
    op.execute(
        "DELETE FROM reconciliation_mismatches m USING reconciliation_mismatches older"
        " WHERE m.provider = older.provider AND m.reference = older.reference"
        " AND m.currency = older.currency AND m.provider_amount = older.provider_amount"
        " AND m.ledger_amount = older.ledger_amount AND m.id > older.id"
    )
    op.create_index(
        "ux_reconciliation_mismatches_once",
        "reconciliation_mismatches",
        ["provider", "reference", "currency", "provider_amount", "ledger_amount"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_reconciliation_mismatches_once", "reconciliation_mismatches")
    op.drop_table("reconciliation_provider_nets")
    op.drop_column("reconciliation_runs", "window_end")
    op.drop_column("reconciliation_runs", "window_start")
    op.drop_table("merchant_notification_dead_letters")
    op.drop_index("ix_ledger_idempotency_created", "ledger_idempotency")
    op.drop_index("ix_api_idempotency_keys_created", "api_idempotency_keys")
    op.drop_column("api_idempotency_keys", "response_raw")
