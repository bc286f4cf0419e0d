"""The ledger: accounts, append-only transactions and entries, holds, idempotency results.

Revision ID: 0001_ledger
Revises:
Create Date: 2025-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_ledger"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLES = ("ledger_transactions", "ledger_entries")
NOW = sa.text("now()")


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True)


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW)


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        _id(),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("allow_negative", sa.Boolean, nullable=False),
        sa.Column("posted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("held", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        _created_at(),
        sa.UniqueConstraint(
            "owner_id", "kind", "currency", name="uq_ledger_accounts_owner_kind_currency"
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_ledger_accounts_currency"),
        sa.CheckConstraint("held >= 0", name="ck_ledger_accounts_held"),
        sa.CheckConstraint(
            "allow_negative OR posted - held >= 0", name="ck_ledger_accounts_non_negative"
        ),
    )
    op.create_table(
        "ledger_transactions",
        _id(),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column(
            "metadata",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column(
            "reverses_transaction_id",
            sa.BigInteger,
            sa.ForeignKey("ledger_transactions.id"),
            nullable=True,
            unique=True,
        ),
        _created_at(),
    )
    op.create_table(
        "ledger_entries",
        _id(),
        sa.Column(
            "transaction_id", sa.BigInteger, sa.ForeignKey("ledger_transactions.id"), nullable=False
        ),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        _created_at(),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_entries_amount"),
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"])
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])
    op.create_table(
        "ledger_holds",
        _id(),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_amount", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "posting_transaction_id",
            sa.BigInteger,
            sa.ForeignKey("ledger_transactions.id"),
            nullable=True,
        ),
        _created_at(),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_ledger_holds_amount"),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'voided', 'expired')", name="ck_ledger_holds_status"
        ),
        sa.CheckConstraint(
            "posted_amount >= 0 AND posted_amount <= amount", name="ck_ledger_holds_posted_amount"
        ),
    )
    op.create_index(
        "ix_ledger_holds_pending_expiry",
        "ledger_holds",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_ledger_holds_account_id", "ledger_holds", ["account_id"])
    op.create_table(
        "ledger_idempotency",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("result", postgresql.JSONB, nullable=True),
        _created_at(),
    )

    # Money rule 2: entries and transactions are immutable; a correction is a reversing transaction.
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused (post a reversing transaction instead)',
                TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$
        """
    )
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    op.drop_table("ledger_idempotency")
    op.drop_table("ledger_holds")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_transactions")
    op.drop_table("ledger_accounts")
