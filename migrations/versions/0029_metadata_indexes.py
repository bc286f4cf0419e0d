"""Lists filtered by metadata (`metadata[order_id]=123`) find their rows by index: a GIN index
(`jsonb_path_ops`, which serves `@>`) on `customers.metadata` and `payments.metadata`.

Revision ID: 0029_metadata_indexes
Revises: 0028_metadata
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0029_metadata_indexes"
down_revision: str | None = "0028_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_customers_metadata ON customers USING gin (metadata jsonb_path_ops)"
    )
    op.execute("CREATE INDEX ix_payments_metadata ON payments USING gin (metadata jsonb_path_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_payments_metadata")
    op.execute("DROP INDEX ix_customers_metadata")
