"""The feed's sequence indexes hold numbered events only.

An event is written unnumbered and numbered after its commit (0025): its entries in the
(merchant, sequence) indexes were a null entry at the write and a second entry at the numbering.
As partial indexes (`WHERE sequence IS NOT NULL`) they get one, at the numbering; every feed
query bounds the sequence, which implies the predicate. The uniqueness of a merchant's numbers is
kept by the partial unique index.

Revision ID: 0026_numbered_event_indexes
Revises: 0025_event_sequencer
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026_numbered_event_indexes"
down_revision: str | None = "0025_event_sequencer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE UNIQUE INDEX uq_events_merchant_numbered ON events (merchant_id, sequence)"
        " WHERE sequence IS NOT NULL"
    )
    op.execute("ALTER TABLE events DROP CONSTRAINT uq_events_merchant_sequence")
    op.execute(
        "CREATE INDEX ix_events_merchant_type_numbered ON events (merchant_id, type, sequence)"
        " WHERE sequence IS NOT NULL"
    )
    op.execute("DROP INDEX ix_events_merchant_type_sequence")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX ix_events_merchant_type_sequence ON events (merchant_id, type, sequence)"
    )
    op.execute("DROP INDEX ix_events_merchant_type_numbered")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT uq_events_merchant_sequence"
        " UNIQUE (merchant_id, sequence)"
    )
    op.execute("DROP INDEX uq_events_merchant_numbered")
