"""Data keys: rows sealed under an old key still read after a rotation, `paysaga data reencrypt`
moves them all to the current key, and migration 0013 seals the rows a deployment already had."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from domain.merchants import DEV_MERCHANT_ID
from paysaga.database import MIGRATIONS_DIR, open_pool, run_migrations, sqlalchemy_url
from paysaga.personal_data import PersonalDataCipher
from paysaga.store import Store

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO_ROOT = Path(__file__).resolve().parents[2]
BEFORE_SEALING = "0012_keys_and_secrets"
OLD_KEY, NEW_KEY = os.urandom(32), os.urandom(32)
OLD = PersonalDataCipher({"old": OLD_KEY}, "old")
ROTATED = PersonalDataCipher({"new": NEW_KEY, "old": OLD_KEY}, "new")
NEW_ONLY = PersonalDataCipher({"new": NEW_KEY}, "new")


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server (re-encryption touches every row)."""
    name = f"data_keys_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.replace("/paysaga_test?", f"/{name}?")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def reencrypt(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`paysaga data reencrypt` as an operator runs it, the new key current, the old one kept."""
    keys = {"new": base64.b64encode(NEW_KEY).decode(), "old": base64.b64encode(OLD_KEY).decode()}
    env = {
        **os.environ,
        "PAYSAGA_DATABASE_URL": database_url,
        "PAYSAGA_DATA_KEYS": json.dumps(keys),
        "PAYSAGA_DATA_CURRENT_KEY_ID": "new",
    }
    return subprocess.run(
        [sys.executable, "-m", "paysaga.cli", "data", "reencrypt", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def key_ids(database_url: str) -> set[str]:
    """The key id every sealed value of the database names."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT full_name_sealed FROM customers UNION ALL SELECT birth_date_sealed"
            " FROM customers UNION ALL SELECT personal_details_sealed FROM payments"
            " WHERE personal_details_sealed IS NOT NULL"
        ).fetchall()
    return {row[0].split(":", 1)[0] for row in rows}


async def test_rotation_keeps_old_rows_readable_and_reencrypt_moves_them_all(
    database: str,
) -> None:
    run_migrations(database)
    async with await open_pool(database, 1, 2) as pool:
        before = Store(pool, OLD)
        for n in range(5):
            await before.create_customer(
                DEV_MERCHANT_ID,
                f"cus_old{n}",
                f"old-{n}",
                f"Old Name {n}",
                date(1990, 1, n + 1),
                "DE",
            )
        await before.insert_payment(
            DEV_MERCHANT_ID, "wd_old", "withdrawal", "cus_old0", 100, "EUR", None,
            {"destination": "DE89370400440532013000"},
        )  # fmt: skip
        after = Store(pool, ROTATED)
        read_after_rotation = await after.get_customer("cus_old3")
        await after.create_customer(
            DEV_MERCHANT_ID, "cus_new", "new-0", "New Name", date(1991, 2, 3), "FR"
        )
        mixed = key_ids(database)

        first = reencrypt(database, "--batch-size", "2")
        again = reencrypt(database)

        only_new = Store(pool, NEW_ONLY)
        names = [(await only_new.get_customer(f"cus_old{n}")) for n in range(5)]
        newest = await only_new.get_customer("cus_new")
        details = await only_new.payment_personal_details("wd_old")

    assert read_after_rotation is not None
    assert (read_after_rotation.full_name, read_after_rotation.birth_date) == (
        "Old Name 3",
        date(1990, 1, 4),
    )
    assert mixed == {"old", "new"}
    assert first.returncode == 0, first.stderr
    assert "customers: 2 rows re-encrypted" in first.stdout  # batches of two, progress shown
    assert "payments: 1 rows re-encrypted" in first.stdout
    assert first.stdout.rstrip().endswith("rows still under old data keys: 0")
    assert again.returncode == 0, again.stderr
    assert "customers: 0 rows re-encrypted" in again.stdout
    assert again.stdout.rstrip().endswith("rows still under old data keys: 0")
    assert key_ids(database) == {"new"}
    assert [c.full_name for c in names if c] == [f"Old Name {n}" for n in range(5)]
    assert newest is not None and newest.full_name == "New Name"
    assert details == {"destination": "DE89370400440532013000"}


async def test_reencrypt_reports_rows_left_under_old_keys_per_key_id(database: str) -> None:
    run_migrations(database)
    async with await open_pool(database, 1, 2) as pool:
        await Store(pool, OLD).create_customer(
            DEV_MERCHANT_ID, "cus_a", "a", "Name A", date(1990, 1, 1), "DE"
        )
        await Store(pool, OLD).create_customer(
            DEV_MERCHANT_ID, "cus_b", "b", "Name B", date(1990, 1, 1), "DE"
        )
    with psycopg.connect(database) as conn:  # a value moved to another row: it cannot be opened
        conn.execute(
            "UPDATE customers SET full_name_sealed ="
            " (SELECT full_name_sealed FROM customers WHERE id = 'cus_a') WHERE id = 'cus_b'"
        )

    run = reencrypt(database)

    assert run.returncode == 1
    assert "cus_b" in run.stderr and "Name A" not in run.stderr + run.stdout
    assert run.stdout.rstrip().endswith("rows still under old data keys: 1 (old: 1)")


async def test_migration_seals_the_rows_a_deployment_had(database: str) -> None:
    run_migrations(database, BEFORE_SEALING)
    with psycopg.connect(database) as conn:
        conn.execute(
            "INSERT INTO customers (id, merchant_id, external_id, full_name, birth_date, country)"
            " SELECT 'cus_' || n, %s, 'ext-' || n, 'Grace Hopper ' || n, '1906-12-09', 'US'"
            " FROM generate_series(1, 1200) n",
            (DEV_MERCHANT_ID,),
        )
        conn.execute(
            "INSERT INTO payments (id, merchant_id, kind, status, customer_id, amount, currency,"
            " details) VALUES"
            " ('dep_1', %(m)s, 'deposit', 'succeeded', 'cus_1', 100, 'EUR',"
            '  \'{"payment_method": "pm_ok"}\'),'
            " ('wd_1', %(m)s, 'withdrawal', 'failed', 'cus_1', 100, 'EUR',"
            '  \'{"destination": "DE89370400440532013000"}\'),'
            " ('tr_1', %(m)s, 'transfer', 'succeeded', 'cus_1', 100, 'EUR',"
            '  \'{"target_currency": "USD", "target_amount": 107}\')',
            {"m": DEV_MERCHANT_ID},
        )

    run_migrations(database)

    with psycopg.connect(database) as conn:
        customers = conn.execute("SELECT to_jsonb(c)::text FROM customers c").fetchall()
        payments = conn.execute("SELECT to_jsonb(p)::text FROM payments p").fetchall()
    async with await open_pool(database, 1, 2) as pool:
        store = Store(pool)  # the installation's keys, as the migration used
        customer = await store.get_customer("cus_1200")
        deposit = await store.payment_personal_details("dep_1")
        withdrawal = await store.payment_personal_details("wd_1")
        transfer = await store.get_payment("tr_1")
    assert len(customers) == 1200
    assert not [row for row in customers if "Grace" in row[0] or "1906-12-09" in row[0]]
    assert not [row for row in payments if "pm_ok" in row[0] or "DE8937" in row[0]]
    assert customer is not None
    assert (customer.full_name, customer.birth_date) == ("Grace Hopper 1200", date(1906, 12, 9))
    assert deposit == {"payment_method": "pm_ok"}
    assert withdrawal == {"destination": "DE89370400440532013000"}
    assert transfer is not None and transfer.details["target_currency"] == "USD"


async def test_migration_downgrade_opens_the_rows_back(database: str) -> None:
    run_migrations(database)
    async with await open_pool(database, 1, 2) as pool:
        await Store(pool).create_customer(
            DEV_MERCHANT_ID, "cus_down", "down", "Ada Lovelace", date(1990, 12, 10), "DE"
        )
        await Store(pool).insert_payment(
            DEV_MERCHANT_ID, "dep_down", "deposit", "cus_down", 100, "EUR", None,
            {"payment_method": "pm_ok", "provider_hint": "cards"},
        )  # fmt: skip
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database))

    command.downgrade(config, BEFORE_SEALING)

    with psycopg.connect(database) as conn:
        customer = conn.execute(
            "SELECT full_name, birth_date FROM customers WHERE id = 'cus_down'"
        ).fetchone()
        details = conn.execute("SELECT details FROM payments WHERE id = 'dep_down'").fetchone()
    assert customer == ("Ada Lovelace", date(1990, 12, 10))
    assert details == ({"payment_method": "pm_ok", "provider_hint": "cards"},)
