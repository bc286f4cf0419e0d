"""Event sequences stamped after commit by a sequencer, not allocated under the merchant's row lock.

- `events.sequence` may be null: an event is written, unnumbered, in the transaction of the change
  it reports; a sequencer numbers the committed ones afterwards (`paysaga.store.sequencer`).
- `events.written_order`: a global counter taken when the event is written, the order a sequencer
  numbers a merchant's committed events in (an event written after another committed is written
  later: the feed keeps cause before effect). Rows of earlier releases keep null: all numbered.
- `ix_events_unsequenced`: the events still to number, found without reading the feed.

Revision ID: 0025_event_sequencer
Revises: 0024_webhook_cursors
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025_event_sequencer"
down_revision: str | None = "0024_webhook_cursors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE events_written_order_seq")
    # No default on the ADD (instant, no rewrite): earlier rows keep null.
    op.execute("ALTER TABLE events ADD COLUMN written_order bigint")
    op.execute(
        "ALTER TABLE events ALTER COLUMN written_order"
        " SET DEFAULT nextval('events_written_order_seq')"
    )
    op.execute("ALTER SEQUENCE events_written_order_seq OWNED BY events.written_order")
    op.execute("ALTER TABLE events ALTER COLUMN sequence DROP NOT NULL")
    op.execute(
        "CREATE INDEX ix_events_unsequenced ON events (merchant_id, written_order)"
        " WHERE sequence IS NULL"
    )


def downgrade() -> None:
    # Number what is still unnumbered, as the sequencer would (per merchant, in written order,
    # after its last number); the table locked against new events meanwhile.
    op.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        """
        WITH pending AS (
            SELECT e.id, m.last_event_sequence
                + row_number() OVER (PARTITION BY e.merchant_id ORDER BY e.written_order) AS seq
            FROM events e JOIN merchants m ON m.id = e.merchant_id
            WHERE e.sequence IS NULL
        ), stamped AS (
            UPDATE events e
            SET sequence = pending.seq,
                payload = jsonb_set(e.payload, '{sequence}', to_jsonb(pending.seq))
            FROM pending WHERE e.id = pending.id
            RETURNING e.merchant_id, e.sequence
        )
        UPDATE merchants m SET last_event_sequence = top.seq
        FROM (SELECT merchant_id, max(sequence) AS seq FROM stamped GROUP BY merchant_id) top
        WHERE m.id = top.merchant_id
        """
    )
    op.execute("DROP INDEX ix_events_unsequenced")
    op.execute("ALTER TABLE events ALTER COLUMN sequence SET NOT NULL")
    op.execute("ALTER TABLE events DROP COLUMN written_order")
