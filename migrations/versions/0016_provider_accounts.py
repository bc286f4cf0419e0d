"""Provider accounts per merchant (issue 23, item 5): an adapter, its credentials and webhook
secret (sealed with the installation's data keys, never shown again), the methods, currencies and
priority it is routed by.

The installation's own providers (`PAYSAGA_PROVIDER_ROUTING`, the sandbox in development) are every
merchant's built-in accounts; a merchant's changes to one of them (disable it, move its priority)
are a row here with `builtin` true, its id the provider's name.

Revision ID: 0016_provider_accounts
Revises: 0014_delivery_errors
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_provider_accounts"
down_revision: str | None = "0014_delivery_errors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE provider_accounts (
            merchant_id text NOT NULL REFERENCES merchants (id),
            id text NOT NULL,
            adapter text NOT NULL,
            name text NOT NULL,
            builtin boolean NOT NULL DEFAULT false,
            endpoint text,
            credentials_sealed text,
            webhook_secret_sealed text,
            methods text[] NOT NULL DEFAULT '{}',
            currencies text[] NOT NULL DEFAULT '{}',
            priority integer NOT NULL,
            enabled boolean NOT NULL DEFAULT true,
            payouts boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (merchant_id, id),
            UNIQUE (merchant_id, name),
            -- A merchant's own account has an id of its own, unique in the installation: its
            -- webhooks arrive at /v1/webhooks/providers/<id> without naming the merchant.
            CHECK (builtin OR id LIKE 'pa\\_%')
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX ux_provider_accounts_own_id ON provider_accounts (id)"
        " WHERE NOT builtin"
    )


def downgrade() -> None:
    op.execute("DROP TABLE provider_accounts")
