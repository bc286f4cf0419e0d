"""Reconciliation runs and the mismatches they find.

Revision ID: 0005_reconciliation
Revises: 0004_api_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_reconciliation"
down_revision: str | None = "0004_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_key", sa.Text, nullable=False, unique=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("lines_checked", sa.Integer, nullable=False),
        sa.Column("mismatches", sa.Integer, nullable=False),
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_table(
        "reconciliation_mismatches",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey("reconciliation_runs.id"), nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("provider_amount", sa.BigInteger, nullable=False),
        sa.Column("ledger_amount", sa.BigInteger, nullable=False),
        sa.Column(
            "found_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_mismatches")
    op.drop_table("reconciliation_runs")
