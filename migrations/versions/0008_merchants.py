"""Merchants: the tenant of everything, each merchant's event feed and its webhook deliveries.

Everything that existed before becomes the development merchant's (`mer_dev`), so a deployment
upgraded from 0007 keeps working: its keys are bound to that one merchant.

Revision ID: 0008_merchants
Revises: 0007_reconciliation_windows
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_merchants"
down_revision: str | None = "0007_reconciliation_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables that gain a NOT NULL merchant, every existing row the development merchant's.
OWNED = ("customers", "payments", "fx_quotes", "ledger_accounts")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE merchants (
            id text PRIMARY KEY,
            name text NOT NULL,
            webhook_url text,
            webhook_secret text,
            -- The last event sequence handed out; the row lock that increments it orders a
            -- merchant's events by commit and leaves no gap (a rolled back increment is undone).
            last_event_sequence bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO merchants (id, name) VALUES ('mer_dev', 'Development merchant')")
    for table in OWNED:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN merchant_id text NOT NULL DEFAULT 'mer_dev'"
            " REFERENCES merchants (id)"
        )
        op.execute(f"ALTER TABLE {table} ALTER COLUMN merchant_id DROP DEFAULT")

    # The same external id, or the same ledger owner, may exist under two merchants.
    op.execute("ALTER TABLE customers DROP CONSTRAINT customers_external_id_key")
    op.execute(
        "ALTER TABLE customers ADD CONSTRAINT uq_customers_merchant_external_id"
        " UNIQUE (merchant_id, external_id)"
    )
    op.execute("ALTER TABLE ledger_accounts DROP CONSTRAINT uq_ledger_accounts_owner_kind_currency")
    op.execute(
        "ALTER TABLE ledger_accounts ADD CONSTRAINT uq_ledger_accounts_merchant_owner_kind_currency"
        " UNIQUE (merchant_id, owner_id, kind, currency)"
    )

    # Lists are per merchant: the indexes lead with it.
    op.execute("DROP INDEX ix_payments_customer_created")
    op.execute("DROP INDEX ix_payments_created")
    op.execute(
        "CREATE INDEX ix_payments_merchant_customer_created"
        " ON payments (merchant_id, customer_id, created_at, id)"
    )
    op.execute(
        "CREATE INDEX ix_payments_merchant_created ON payments (merchant_id, created_at, id)"
    )

    # Idempotency keys are the merchant's, not the API key's: a rotated key replays its own.
    op.execute("ALTER TABLE api_idempotency_keys DROP CONSTRAINT api_idempotency_keys_pkey")
    op.execute("ALTER TABLE api_idempotency_keys RENAME COLUMN principal TO merchant_id")
    op.execute("UPDATE api_idempotency_keys SET merchant_id = 'mer_dev'")
    # Two API keys of the development merchant may have claimed one key: keep the oldest.
    op.execute(
        "DELETE FROM api_idempotency_keys a USING api_idempotency_keys b"
        " WHERE a.key = b.key AND a.ctid > b.ctid"
    )
    op.execute("ALTER TABLE api_idempotency_keys ADD PRIMARY KEY (merchant_id, key)")

    # A key belongs to one merchant; a platform key to none.
    op.execute("ALTER TABLE api_keys ADD COLUMN merchant_id text REFERENCES merchants (id)")
    op.execute("UPDATE api_keys SET merchant_id = 'mer_dev'")
    op.execute(
        "ALTER TABLE api_keys ADD CONSTRAINT ck_api_keys_merchant"
        " CHECK ((merchant_id IS NULL) = ('platform' = ANY (scopes)))"
    )
    op.execute("ALTER TABLE ops_audit_log ADD COLUMN merchant_id text")
    op.execute("UPDATE ops_audit_log SET merchant_id = 'mer_dev'")
    op.execute("CREATE INDEX ix_ops_audit_log_merchant ON ops_audit_log (merchant_id, id)")

    # The event feed, shaped as a transactional outbox: an insert-only table a CDC tool (the
    # Debezium outbox event router) can stream as is. `payload` is the event as delivered.
    op.execute(
        """
        CREATE TABLE events (
            id text PRIMARY KEY,
            merchant_id text NOT NULL REFERENCES merchants (id),
            sequence bigint NOT NULL,
            type text NOT NULL,
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_events_merchant_sequence UNIQUE (merchant_id, sequence)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_events_merchant_type_sequence ON events (merchant_id, type, sequence)"
    )
    op.execute("CREATE INDEX ix_events_created ON events (created_at)")

    # One delivery per event to the merchant's webhook endpoint: pending until the merchant says
    # 2xx, or dead (given up on) for an operator to redeliver.
    op.execute(
        """
        CREATE TABLE event_deliveries (
            event_id text PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
            merchant_id text NOT NULL REFERENCES merchants (id),
            sequence bigint NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'dead', 'no_endpoint')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            lease_until timestamptz,
            last_error text,
            redeliveries integer NOT NULL DEFAULT 0,
            delivered_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_event_deliveries_due ON event_deliveries (next_attempt_at)"
        " WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX ix_event_deliveries_dead ON event_deliveries (merchant_id, sequence)"
        " WHERE status = 'dead'"
    )
    # Each merchant's lane: its oldest pending delivery, found without reading its backlog.
    op.execute(
        "CREATE INDEX ix_event_deliveries_pending_lane ON event_deliveries (merchant_id, sequence)"
        " WHERE status = 'pending'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE event_deliveries")
    op.execute("DROP TABLE events")
    op.execute("DROP INDEX ix_ops_audit_log_merchant")
    op.execute("ALTER TABLE ops_audit_log DROP COLUMN merchant_id")
    op.execute("ALTER TABLE api_keys DROP CONSTRAINT ck_api_keys_merchant")
    op.execute("ALTER TABLE api_keys DROP COLUMN merchant_id")
    op.execute("ALTER TABLE api_idempotency_keys DROP CONSTRAINT api_idempotency_keys_pkey")
    op.execute("ALTER TABLE api_idempotency_keys RENAME COLUMN merchant_id TO principal")
    op.execute("ALTER TABLE api_idempotency_keys ADD PRIMARY KEY (principal, key)")
    op.execute("DROP INDEX ix_payments_merchant_created")
    op.execute("DROP INDEX ix_payments_merchant_customer_created")
    op.execute("CREATE INDEX ix_payments_created ON payments (created_at, id)")
    op.execute(
        "CREATE INDEX ix_payments_customer_created ON payments (customer_id, created_at, id)"
    )
    op.execute(
        "ALTER TABLE ledger_accounts DROP CONSTRAINT uq_ledger_accounts_merchant_owner_kind_currency"
    )
    op.execute(
        "ALTER TABLE ledger_accounts ADD CONSTRAINT uq_ledger_accounts_owner_kind_currency"
        " UNIQUE (owner_id, kind, currency)"
    )
    op.execute("ALTER TABLE customers DROP CONSTRAINT uq_customers_merchant_external_id")
    op.execute(
        "ALTER TABLE customers ADD CONSTRAINT customers_external_id_key UNIQUE (external_id)"
    )
    for table in reversed(OWNED):
        op.execute(f"ALTER TABLE {table} DROP COLUMN merchant_id")
    op.execute("DROP TABLE merchants")
