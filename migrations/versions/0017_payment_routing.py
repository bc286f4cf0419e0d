"""Each payment keeps why it went where: `routing` (issue 23, item 7).

`{reason, method, candidates: [{id, priority}], rates: {account: rate}}`, written with the payment
by the API (deposits today); null for payments made before, and for withdrawals and transfers,
which follow the priority order unchanged. Success-rate routing reads the `method` family back
(the payment method itself is sealed personal data). The rates' query reads a merchant's recent
payments by `ix_payments_merchant_created` (merchant, created_at): no index of its own.

Revision ID: 0017_payment_routing
Revises: 0016_provider_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0017_payment_routing"
down_revision: str | None = "0016_provider_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("routing", JSONB))


def downgrade() -> None:
    op.drop_column("payments", "routing")
