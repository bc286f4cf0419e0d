"""Reconciliation runs and the mismatches they find.

Revision ID: 0005_reconciliation
Revises: 0004_api_keys
"""

from collections.abc import Sequence

revision: str = "0005_reconciliation"
down_revision: str | None = "0004_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
