"""A deployment upgraded from the schema before merchants keeps working as one merchant."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from domain.merchants import DEV_MERCHANT_ID
from paysaga.database import open_pool, run_migrations
from paysaga.store import Store
from paysaga.store.pages import Window

BEFORE_MERCHANTS = "0007_reconciliation_windows"


@pytest.fixture
def old_database(postgres_url: str) -> Iterator[str]:
    """A database of its own on the session's server, at the last schema before merchants."""
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.replace("/paysaga_test?", f"/{name}?")
    run_migrations(url, BEFORE_MERCHANTS)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def seed_before_merchants(url: str, secret: str) -> None:
    """What a running deployment had: a key, a customer, a payment, an idempotency record, and a
    ledger transaction of a deposit (clearing to wallet)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO api_keys (id, name, prefix, secret_hash, scopes)"
            " VALUES ('key_old', 'checkout', 'sk_live_old', %s, ARRAY['payments'])",
            (hashlib.sha256(secret.encode()).hexdigest(),),
        )
        conn.execute(
            "INSERT INTO customers (id, external_id, full_name, birth_date, country)"
            " VALUES ('cus_old', 'player-1', 'Ada Lovelace', '1990-12-10', 'DE')"
        )
        conn.execute(
            "INSERT INTO payments (id, kind, status, customer_id, amount, currency)"
            " VALUES ('dep_old', 'deposit', 'succeeded', 'cus_old', 2500, 'EUR')"
        )
        for principal in ("key_old", "0123456789abcdef"):  # two keys used one Idempotency-Key
            conn.execute(
                "INSERT INTO api_idempotency_keys (principal, key, request_hash, response_status)"
                " VALUES (%s, 'retry-1', 'h', 202)",
                (principal,),
            )
        conn.execute(
            "INSERT INTO ledger_accounts (id, owner_id, kind, currency, allow_negative, posted)"
            " VALUES (1, 'sandbox-cards', 'provider_clearing', 'EUR', true, -2500),"
            " (2, 'cus_old', 'customer_wallet', 'EUR', false, 2500)"
        )
        conn.execute(
            "INSERT INTO ledger_transactions (id, idempotency_key) VALUES (1, 'dep_old:credit')"
        )
        conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
            " VALUES (1, 1, -2500, -2500), (1, 2, 2500, 2500)"
        )


@pytest.mark.asyncio(loop_scope="session")
async def test_upgrade_makes_everything_the_development_merchants(old_database: str) -> None:
    secret = "sk_live_" + uuid.uuid4().hex
    seed_before_merchants(old_database, secret)

    run_migrations(old_database)

    async with await open_pool(old_database, 1, 2) as pool:
        store = Store(pool)
        key = await store.find_api_key_by_hash(hashlib.sha256(secret.encode()).hexdigest())
        books = store.for_merchant(DEV_MERCHANT_ID)
        customer = await books.get_customer("cus_old")
        payment = await books.get_payment("dep_old")
        listed, _ = await books.list_payments(
            customer_id=None, kind=None, status=None, window=Window[str](limit=10)
        )
        replay = await books.claim_idempotency_key("retry-1", "h", 24)
        elsewhere = await store.for_merchant("mer_other").get_payment("dep_old")
        # The first event of the upgraded merchant is number 1.
        await store.update_payment("dep_old", "succeeded")  # terminal: no change, no event
        events, _ = await books.list_events(after=0, event_type=None, limit=10)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT merchant_id FROM ledger_accounts"
                " UNION SELECT DISTINCT merchant_id FROM customers"
            )
            owners = {row[0] for row in await cur.fetchall()}

    assert key is not None and key.merchant_id == DEV_MERCHANT_ID
    assert customer is not None and payment is not None
    assert [p.id for p in listed] == ["dep_old"]
    assert replay is not None and replay.response_status == 202  # one record survives per key
    assert elsewhere is None
    assert events == []
    assert owners == {DEV_MERCHANT_ID}
