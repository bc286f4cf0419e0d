"""A payment waiting for its customer keeps what they must do: `next_action` (issue 24).

`{type: "redirect_to_url", redirect_to_url: {url, return_url}}` while the payment is
`requires_action` (3-D Secure, the bank's approval), written by the deposit saga with that status
and cleared by its next status change; null otherwise and for payments made before.

Revision ID: 0019_payment_next_action
Revises: 0018_provider_calls (0018_provider_calls, on the breakers branch, goes between them
when both are merged)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0019_payment_next_action"
down_revision: str | None = "0018_provider_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("next_action", JSONB))


def downgrade() -> None:
    op.drop_column("payments", "next_action")
