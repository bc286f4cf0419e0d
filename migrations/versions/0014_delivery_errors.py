"""Webhook deliveries keep a coarse error, never the connection's own words (issue 22, item 6).

Revision ID: 0014_delivery_errors
Revises: 0013_personal_data_at_rest
"""

from collections.abc import Sequence

revision: str = "0014_delivery_errors"
down_revision: str | None = "0013_personal_data_at_rest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
