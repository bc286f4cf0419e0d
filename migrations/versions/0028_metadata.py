"""The merchant's own key-value pairs on customers and payments: `metadata` (issue 30).

String keys and values (at most 50 keys, keys up to 40 characters, values up to 500: checked by
the API), set when the object is created, returned on reads, filtered on lists. `{}` for the rows
made before (a constant default: no table rewrite).

Revision ID: 0028_metadata
Revises: 0026_numbered_event_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0028_metadata"
down_revision: str | None = "0026_numbered_event_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb")
    op.execute("ALTER TABLE payments ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE payments DROP COLUMN metadata")
    op.execute("ALTER TABLE customers DROP COLUMN metadata")
