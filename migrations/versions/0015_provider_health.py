"""Circuit breakers of the providers: one row per provider account (today: per provider name).

`recent` is the breaker's window, the outcomes of the account's last calls oldest first, one
character each (`a` answered, `f` unavailable: providers/health.py). `opened_at` is set while the
breaker is open or half-open; `probes_leased` counts the half-open probes taken since
`probes_leased_at`, by a conditional UPDATE, and `probes_answered` those that came back answered.

Revision ID: 0015_provider_health
Revises: 0014_delivery_errors
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_provider_health"
down_revision: str | None = "0014_delivery_errors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE provider_health (
            provider_account text PRIMARY KEY,
            state text NOT NULL DEFAULT 'closed'
                CONSTRAINT ck_provider_health_state CHECK (state IN ('closed', 'open', 'half_open')),
            recent text NOT NULL DEFAULT '',
            opened_at timestamptz,
            probes_leased integer NOT NULL DEFAULT 0,
            probes_leased_at timestamptz,
            probes_answered integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE provider_health")
