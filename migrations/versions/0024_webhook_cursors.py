"""The webhook outbox as one cursor per merchant over the event feed, not a row per event.

- `webhook_cursors`: per merchant, the highest sequence done with (`delivered_through`:
  delivered, dead-lettered or skipped), and the state of the next one, the lane's head
  (`attempts`, `next_attempt_at`, `last_error`) and the lane's lease. A merchant's cursor is made
  with the merchant (a trigger). A claim reads cursors, never the backlog behind them.
- `event_deliveries` keeps the exceptions only: dead letters (and their redeliveries), and
  events delivered after failed attempts (their attempts and error, for the operator).
- `webhook_skips`: the ranges of events not sent for want of an endpoint (`no_endpoint`).
- `webhook_delivery_states`: every event's delivery state as the rows of earlier releases
  showed it, derived from the three (for operators and tests; never on the hot path).

Revision ID: 0024_webhook_cursors
Revises: 0023_aml_monitoring
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024_webhook_cursors"
down_revision: str | None = "0023_aml_monitoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES_VIEW = """
CREATE VIEW webhook_delivery_states AS
SELECT e.id AS event_id, e.merchant_id, e.sequence,
    CASE WHEN d.event_id IS NOT NULL THEN d.status
         WHEN s.reason IS NOT NULL THEN 'no_endpoint'
         WHEN e.sequence <= c.delivered_through THEN 'delivered'
         ELSE 'pending' END AS status,
    CASE WHEN d.event_id IS NOT NULL THEN d.attempts
         WHEN s.reason IS NOT NULL THEN 0
         WHEN e.sequence <= c.delivered_through THEN 1
         WHEN e.sequence = c.delivered_through + 1 THEN c.attempts
         ELSE 0 END AS attempts,
    CASE WHEN d.event_id IS NOT NULL THEN d.last_error
         WHEN s.reason IS NOT NULL THEN s.reason
         WHEN e.sequence = c.delivered_through + 1 THEN c.last_error END AS last_error,
    CASE WHEN d.event_id IS NOT NULL THEN d.lease_until
         WHEN e.sequence > c.delivered_through THEN c.lease_until END AS lease_until,
    CASE WHEN d.event_id IS NOT NULL THEN d.next_attempt_at
         WHEN e.sequence = c.delivered_through + 1 THEN c.next_attempt_at
         ELSE e.created_at END AS next_attempt_at
FROM events e
LEFT JOIN webhook_cursors c ON c.merchant_id = e.merchant_id
LEFT JOIN event_deliveries d ON d.event_id = e.id
LEFT JOIN LATERAL (
    SELECT k.reason FROM webhook_skips k
    WHERE k.merchant_id = e.merchant_id AND e.sequence BETWEEN k.from_sequence AND k.through_sequence
    LIMIT 1
) s ON true
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_cursors (
            merchant_id text PRIMARY KEY REFERENCES merchants (id) ON DELETE CASCADE,
            delivered_through bigint NOT NULL DEFAULT 0,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            lease_until timestamptz,
            last_error text,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_skips (
            merchant_id text NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
            from_sequence bigint NOT NULL,
            through_sequence bigint NOT NULL,
            reason text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, from_sequence)
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION webhook_cursor_of_new_merchant() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO webhook_cursors (merchant_id, delivered_through)
            VALUES (NEW.id, NEW.last_event_sequence) ON CONFLICT DO NOTHING;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER webhook_cursor_of_new_merchant AFTER INSERT ON merchants"
        " FOR EACH ROW EXECUTE FUNCTION webhook_cursor_of_new_merchant()"
    )
    # Each cursor starts at its merchant's first pending delivery (that delivery's state is the
    # head's); a merchant with none pending is done with every event it has.
    op.execute(
        """
        INSERT INTO webhook_cursors (merchant_id, delivered_through, attempts, next_attempt_at,
            last_error)
        SELECT m.id, COALESCE(h.sequence - 1, m.last_event_sequence), COALESCE(h.attempts, 0),
               COALESCE(h.next_attempt_at, now()), h.last_error
        FROM merchants m
        LEFT JOIN LATERAL (
            SELECT d.sequence, d.attempts, d.next_attempt_at, d.last_error FROM event_deliveries d
            WHERE d.merchant_id = m.id AND d.status = 'pending' AND d.redeliveries = 0
            ORDER BY d.sequence LIMIT 1
        ) h ON true
        """
    )
    # What the cursors now say: pending rows behind a head, delivered ones taken at the first
    # try. Kept: dead letters, redeliveries, and deliveries that took more than one attempt.
    op.execute(
        """
        DELETE FROM event_deliveries
        WHERE (status = 'pending' AND redeliveries = 0)
           OR (status = 'delivered' AND attempts <= 1 AND redeliveries = 0)
        """
    )
    op.execute(
        """
        INSERT INTO webhook_skips (merchant_id, from_sequence, through_sequence, reason)
        SELECT merchant_id, sequence, sequence, COALESCE(last_error, 'no endpoint')
        FROM event_deliveries WHERE status = 'no_endpoint'
        """
    )
    op.execute("DELETE FROM event_deliveries WHERE status = 'no_endpoint'")
    op.execute(STATES_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW webhook_delivery_states")
    # Every event the cursors had not reached becomes a pending delivery again.
    op.execute(
        """
        INSERT INTO event_deliveries (event_id, merchant_id, sequence)
        SELECT e.id, e.merchant_id, e.sequence FROM events e
        JOIN webhook_cursors c ON c.merchant_id = e.merchant_id
        WHERE e.sequence > c.delivered_through
        ON CONFLICT DO NOTHING
        """
    )
    op.execute("DROP TRIGGER webhook_cursor_of_new_merchant ON merchants")
    op.execute("DROP FUNCTION webhook_cursor_of_new_merchant()")
    op.execute("DROP TABLE webhook_skips")
    op.execute("DROP TABLE webhook_cursors")
