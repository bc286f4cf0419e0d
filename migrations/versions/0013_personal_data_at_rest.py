"""Personal data encrypted at rest with the installation's keys, searchable fields by keyed hash (issue 22, item 8).

Revision ID: 0013_personal_data_at_rest
Revises: 0012_keys_and_secrets
"""

from collections.abc import Sequence

revision: str = "0013_personal_data_at_rest"
down_revision: str | None = "0012_keys_and_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
