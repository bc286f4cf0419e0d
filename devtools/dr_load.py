"""The disaster-recovery drill's load, and what it counts as acknowledged (`dr_drill`).

Deposits, withdrawals, and wallet bets each followed by its win or loss, every request retried
with its own idempotency key (the game provider's transaction id) until answered; a watcher that
reads back the committed ledger transactions and counts those whose WAL the backup receiver has
confirmed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from devtools.chaos import REVIEWED_AMOUNT, Load, settle
from paysaga import backup

# Half of them slow (no webhook: polled; the provider's answer stalled: an unknown outcome,
# polled), so that many payments are in flight when the disaster strikes.
DEPOSIT_METHODS = ["pm_ok", "pm_duplicate_webhook", "pm_no_webhook", "pm_timeout"]
PAYOUT_DESTINATIONS = ["pm_ok", "pm_decline", "pm_timeout", "pm_timeout"]
GAME_PROVIDER = "drill-games"


@dataclass
class Acknowledged:
    """What the load was told is committed, and what a reader saw durable in the database."""

    wallet_calls: set[str] = field(default_factory=set)  # transaction ids answered 200
    ledger_keys: set[str] = field(default_factory=set)  # read back, its WAL at the receiver
    wallet_retries: int = 0
    wallet_retry_reasons: Counter[str] = field(default_factory=Counter)

    def payments(self, load: Load) -> set[str]:
        return set(load.payments)


async def wallet_call(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], acked: Acknowledged
) -> bool:
    """A game call, sent again (the same transaction id) until answered; True if accepted."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            response = await api.post(path, json=body)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code < 500:
            if response.status_code == 200:
                acked.wallet_calls.add(body["transaction_id"])
                return True
            return False  # refused (no funds): an answer too
        acked.wallet_retries += 1
        acked.wallet_retry_reasons[
            "no answer" if response is None else str(response.status_code)
        ] += 1
        await asyncio.sleep(0.3)
    return False


async def bet_and_settle(api: httpx.AsyncClient, customer: str, acked: Acknowledged) -> None:
    """A bet, then its win (or a settled loss), as a game provider sends them."""
    bet_id = f"bet-{uuid.uuid4().hex[:12]}"
    amount = random.randint(10, 500)
    bet: dict[str, Any] = {
        "customer_id": customer,
        "game_provider": GAME_PROVIDER,
        "transaction_id": bet_id,
        "game_id": "roulette",
        "round_id": f"round-{bet_id}",
        "amount": amount,
        "currency": "EUR",
    }
    if not await wallet_call(api, "/v1/wallet/bets", bet, acked):
        return
    win = {
        "customer_id": customer,
        "game_provider": GAME_PROVIDER,
        "transaction_id": f"win-{bet_id}",
        "bet_transaction_id": bet_id,
        "amount": random.choice([0, 0, amount * 2]),
        "round_closed": True,
        "currency": "EUR",
    }
    await wallet_call(api, "/v1/wallet/wins", win, acked)


async def send_one(load: Load, n: int, customers: list[str], acked: Acknowledged) -> None:
    """The n-th request of the load: a deposit, a withdrawal, or a bet and its win, in turn."""
    customer = random.choice(customers)
    kind = n % 3
    if kind == 0:
        body = {
            "customer_id": customer,
            "currency": "EUR",
            "amount": random.randint(100, 5_000),
            "payment_method": random.choice(DEPOSIT_METHODS),
        }
        await load.submit("/v1/deposits", body, give_up_after=300)
    elif kind == 1:
        body = {
            "customer_id": customer,
            "currency": "EUR",
            # One in four large enough to wait for a review (rejected at its deadline, 10 s):
            # in flight across the disaster.
            "amount": REVIEWED_AMOUNT if n % 12 == 1 else random.randint(100, 3_000),
            "destination": random.choice(PAYOUT_DESTINATIONS),
        }
        await load.submit("/v1/withdrawals", body, give_up_after=300)
    else:
        await bet_and_settle(load.api, customer, acked)


async def run_load(
    load: Load, customers: list[str], acked: Acknowledged, duration: float, rate: float
) -> None:
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < duration:
        tasks.append(asyncio.create_task(send_one(load, n, customers, acked)))
        n += 1
        progress(
            f"load: {n} sent, {len(load.payments)} payments accepted,"
            f" {len(acked.wallet_calls)} wallet calls, {len(acked.ledger_keys)} ledger"
            f" transactions durable, {load.retries + acked.wallet_retries} retries"
        )
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    print(flush=True)


async def watch_ledger(database_url: str, acked: Acknowledged, stop: asyncio.Event) -> None:
    """Read the committed ledger transactions; once the receiver has flushed the WAL that holds
    them (its flush position past the insert position read after them), they are acknowledged.

    A transaction is visible to others a moment before its synchronous commit returns: only the
    confirmation of the receiver makes a read one the writer was told of too.
    """
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, connect_timeout=2
            ) as conn:
                while not stop.is_set():
                    cur = await conn.execute("SELECT idempotency_key FROM ledger_transactions")
                    keys = {key for (key,) in await cur.fetchall()}
                    cur = await conn.execute("SELECT pg_current_wal_lsn()::text")
                    row = await cur.fetchone()
                    assert row is not None
                    if await _flushed_past(conn, row[0], stop):
                        acked.ledger_keys |= keys
                    await asyncio.sleep(0.2)
        except (psycopg.Error, OSError):
            await asyncio.sleep(0.2)  # the database is gone, or back: read again


async def _flushed_past(conn: psycopg.AsyncConnection[Any], lsn: str, stop: asyncio.Event) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not stop.is_set():
        cur = await conn.execute(
            "SELECT flush_lsn >= %s::pg_lsn FROM pg_stat_replication WHERE application_name = %s",
            (lsn, backup.RECEIVER_NAME),
        )
        row = await cur.fetchone()
        if row is not None and row[0]:
            return True
        await asyncio.sleep(0.05)
    return False


async def fund_customers(load: Load, count: int) -> list[str]:
    customers = []
    for i in range(count):
        customer = {
            "external_id": f"drill-{i}-{uuid.uuid4().hex[:6]}",
            "full_name": f"Player {i}",
            "birth_date": "1990-01-01",
            "country": "DE",
        }
        for _attempt in range(50):  # the API's connections may have seen PostgreSQL restart
            response = await load.api.post("/v1/customers", json=customer)
            if response.status_code == 201:
                break
            await asyncio.sleep(0.2)
        response.raise_for_status()
        customers.append(response.json()["id"])
        body = {
            "customer_id": customers[-1],
            "amount": 4_000_000,  # room for several reviewed withdrawals at once
            "currency": "EUR",
            "payment_method": "pm_ok",
        }
        await load.submit("/v1/deposits", body)
    funding = await settle(load, timeout=60)
    if any(p["status"] != "succeeded" for p in funding.values()):
        raise RuntimeError(f"the customers' funding deposits did not succeed: {funding}")
    return customers


def progress(message: str) -> None:
    print(f"\r[dr] {message}   ", end="", flush=True)
