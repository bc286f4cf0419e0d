"""Where each provider call's idempotency key was sent: the circuit breakers' proof of "not sent".

One row per idempotency key of a charge, payout or refund, written before the request leaves:
`provider_account` is the account it was last sent to, `state` `sent` (it may have landed
there), or `refused` (that account answered that it certainly did nothing with it). An open
breaker may skip a call only for a key never sent to that account; a key `sent` to one account
is never sent to another (a saga reset from the Temporal UI must not charge twice). The key
decides.

Revision ID: 0018_provider_calls
Revises: 0015_provider_health, 0017_payment_routing
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_provider_calls"
# Also the merge of the two lines that left 0014: 0015 (the breakers) and 0016-0017 (provider
# accounts, routing), which were written side by side.
down_revision: str | tuple[str, ...] | None = ("0015_provider_health", "0017_payment_routing")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE provider_calls (
            idempotency_key text PRIMARY KEY,
            provider_account text NOT NULL,
            state text NOT NULL
                CONSTRAINT ck_provider_calls_state CHECK (state IN ('sent', 'refused')),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE provider_calls")
