"""API keys revocable and listable, a merchant's webhook secret that rotates with a grace period, and the feed's purge mark (issue 22, item 7).

Revision ID: 0012_keys_and_secrets
Revises: 0011_disputes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_keys_and_secrets"
down_revision: str | None = "0011_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A merchant's keys, listed oldest first (GET /v1/merchant/api-keys).
    op.execute("CREATE INDEX ix_api_keys_merchant ON api_keys (merchant_id, created_at, id)")
    # The secret a rotation replaced keeps signing, beside the new one, until it expires.
    op.execute(
        "ALTER TABLE merchants ADD COLUMN previous_webhook_secret text,"
        " ADD COLUMN previous_webhook_secret_expires_at timestamptz"
    )
    # The highest sequence retention has purged: a feed cursor below it would skip events (410).
    op.execute("ALTER TABLE merchants ADD COLUMN events_purged_through bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE merchants DROP COLUMN events_purged_through")
    op.execute(
        "ALTER TABLE merchants DROP COLUMN previous_webhook_secret,"
        " DROP COLUMN previous_webhook_secret_expires_at"
    )
    op.execute("DROP INDEX ix_api_keys_merchant")
