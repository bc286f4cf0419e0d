"""AML monitoring: a merchant's compliance rules, and the reasons a payment went to review.

- `merchants.compliance`: the merchant's monitoring rules (`{min_wagering_before_withdrawal,
  structuring_deposits, edd_threshold_eur}`), each off (0) by default.
- `payments.review_reasons`: the rules that sent the payment to review (`large_amount`,
  `low_wagering`, `structuring`, `edd_required`), written by the risk step; null otherwise.

Revision ID: 0023_aml_monitoring
Revises: 0022_responsible_gambling
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023_aml_monitoring"
down_revision: str | None = "0022_responsible_gambling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE merchants ADD COLUMN compliance jsonb NOT NULL DEFAULT '{}'::jsonb")
    op.execute("ALTER TABLE payments ADD COLUMN review_reasons jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE payments DROP COLUMN review_reasons")
    op.execute("ALTER TABLE merchants DROP COLUMN compliance")
