"""Personal data encrypted at rest with the installation's keys, searchable fields by keyed hash (issue 22, item 8).

Customers' names and birth dates move to `full_name_sealed` and `birth_date_sealed`; payments'
methods and destinations leave the `details` JSON for `personal_details_sealed`. Each value is
sealed (`paysaga.personal_data`) with the current data key of the settings, bound to its row,
in batches. No sealed field is one the API filters or looks up on, so none needs a keyed hash.

Revision ID: 0013_personal_data_at_rest
Revises: 0012_keys_and_secrets
"""

import json
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

from paysaga.personal_data import PersonalDataCipher, sealed_at
from paysaga.settings import DEV_DATA_KEY, get_settings

revision: str = "0013_personal_data_at_rest"
down_revision: str | None = "0012_keys_and_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_ROWS = 500
PERSONAL_DETAILS = ("payment_method", "destination")


def _cipher() -> PersonalDataCipher:
    settings = get_settings()
    if settings.environment != "development" and DEV_DATA_KEY in settings.data_keys.values():
        print(
            "warning: sealing personal data with the public development data key; set"
            " PAYSAGA_DATA_KEYS and run `paysaga data reencrypt`",
            file=sys.stderr,
        )
    return PersonalDataCipher.from_settings(settings)


def _in_batches(select: str, update: str, change: Callable[[Any], dict[str, Any]]) -> None:
    """Run `update` for every row `select` finds, `BATCH_ROWS` at a time in id order."""
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(sa.text(select), {"after": after, "limit": BATCH_ROWS}).all()
        if not rows:
            return
        conn.execute(sa.text(update), [change(row) for row in rows])
        after = rows[-1].id


def upgrade() -> None:
    cipher = _cipher()
    op.add_column("customers", sa.Column("full_name_sealed", sa.Text))
    op.add_column("customers", sa.Column("birth_date_sealed", sa.Text))
    op.add_column("payments", sa.Column("personal_details_sealed", sa.Text))

    def seal_customer(row: Any) -> dict[str, Any]:
        name_at = sealed_at("customers", "full_name_sealed", row.merchant_id, row.id)
        birth_at = sealed_at("customers", "birth_date_sealed", row.merchant_id, row.id)
        return {
            "id": row.id,
            "name": cipher.seal(row.full_name, name_at),
            "birth": cipher.seal(row.birth_date.isoformat(), birth_at),
        }

    _in_batches(
        "SELECT id, merchant_id, full_name, birth_date FROM customers"
        " WHERE id > :after ORDER BY id LIMIT :limit",
        "UPDATE customers SET full_name_sealed = :name, birth_date_sealed = :birth WHERE id = :id",
        seal_customer,
    )

    def seal_details(row: Any) -> dict[str, Any]:
        personal = {k: row.details[k] for k in PERSONAL_DETAILS if k in row.details}
        at = sealed_at("payments", "personal_details_sealed", row.merchant_id, row.id)
        return {"id": row.id, "sealed": cipher.seal(json.dumps(personal), at)}

    _in_batches(
        "SELECT id, merchant_id, details FROM payments WHERE id > :after"
        " AND (details->'payment_method' IS NOT NULL OR details->'destination' IS NOT NULL)"
        " ORDER BY id LIMIT :limit",
        "UPDATE payments SET personal_details_sealed = :sealed,"
        " details = details - 'payment_method' - 'destination' WHERE id = :id",
        seal_details,
    )
    op.alter_column("customers", "full_name_sealed", nullable=False)
    op.alter_column("customers", "birth_date_sealed", nullable=False)
    op.drop_column("customers", "full_name")
    op.drop_column("customers", "birth_date")


def downgrade() -> None:
    cipher = _cipher()
    op.add_column("customers", sa.Column("full_name", sa.Text))
    op.add_column("customers", sa.Column("birth_date", sa.Date))

    def open_customer(row: Any) -> dict[str, Any]:
        name_at = sealed_at("customers", "full_name_sealed", row.merchant_id, row.id)
        birth_at = sealed_at("customers", "birth_date_sealed", row.merchant_id, row.id)
        return {
            "id": row.id,
            "name": cipher.open(row.full_name_sealed, name_at),
            "birth": date.fromisoformat(cipher.open(row.birth_date_sealed, birth_at)),
        }

    _in_batches(
        "SELECT id, merchant_id, full_name_sealed, birth_date_sealed FROM customers"
        " WHERE id > :after ORDER BY id LIMIT :limit",
        "UPDATE customers SET full_name = :name, birth_date = :birth WHERE id = :id",
        open_customer,
    )

    def open_details(row: Any) -> dict[str, Any]:
        at = sealed_at("payments", "personal_details_sealed", row.merchant_id, row.id)
        return {"id": row.id, "personal": cipher.open(row.personal_details_sealed, at)}

    _in_batches(
        "SELECT id, merchant_id, personal_details_sealed FROM payments WHERE id > :after"
        " AND personal_details_sealed IS NOT NULL ORDER BY id LIMIT :limit",
        "UPDATE payments SET details = details || CAST(:personal AS jsonb) WHERE id = :id",
        open_details,
    )
    op.alter_column("customers", "full_name", nullable=False)
    op.alter_column("customers", "birth_date", nullable=False)
    op.drop_column("customers", "full_name_sealed")
    op.drop_column("customers", "birth_date_sealed")
    op.drop_column("payments", "personal_details_sealed")
