"""API keys revocable and listable, and a merchant's webhook secret that rotates with a grace period (issue 22, item 7).

Revision ID: 0012_keys_and_secrets
Revises: 0011_disputes
"""

from collections.abc import Sequence

revision: str = "0012_keys_and_secrets"
down_revision: str | None = "0011_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
