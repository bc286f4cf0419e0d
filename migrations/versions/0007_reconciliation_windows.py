"""Reconciliation by settlement window: find a window's ledger side without reading all history.

Revision ID: 0007_reconciliation_windows
Revises: 0006_retention
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_reconciliation_windows"
down_revision: str | None = "0006_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A payment's ledger transactions, by the payment id that prefixes their idempotency keys.
    op.create_index(
        "ix_ledger_transactions_payment",
        "ledger_transactions",
        [sa.text("split_part(idempotency_key, ':', 1)")],
    )
    # The clearing transactions that become overdue in a window (booked before it, less the grace).
    op.create_index("ix_ledger_transactions_created", "ledger_transactions", ["created_at"])
    # Where a provider's next window starts: the end of its last one.
    op.create_index(
        "ix_reconciliation_runs_window", "reconciliation_runs", ["provider", "window_end"]
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_runs_window", "reconciliation_runs")
    op.drop_index("ix_ledger_transactions_created", "ledger_transactions")
    op.drop_index("ix_ledger_transactions_payment", "ledger_transactions")
