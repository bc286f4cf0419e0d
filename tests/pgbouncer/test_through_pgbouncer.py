"""The stack through PgBouncer in transaction mode (Debian's 1.18: no prepared statements).

An API and a worker of this module's own reach the session's PostgreSQL through PgBouncer only
(`PAYSAGA_DATABASE_PREPARED_STATEMENTS=false`; LISTEN straight to PostgreSQL): a deposit saga, a
wallet bet and win, and the API's reads work as they do without it, and PgBouncer's own
statistics show the transactions went through it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from devtools.pgbouncer import PgBouncer, start_pgbouncer
from devtools.stack import free_port
from paysaga.database import connection_kwargs, open_pool
from paysaga.settings import DEV_MERCHANT_KEY, get_settings
from tests.psp_fixtures import TEST_ENV, SandboxPSPProcess
from tests.stack import (
    STACK_ENV,
    Service,
    balance_of,
    create_customer,
    post_payment,
    succeeded_operations,
    wait_terminal,
)
from tests.stack import Stack as RunningStack


def bounced_url(pgbouncer: PgBouncer, postgres_url: str) -> str:
    """The session database's URL, through PgBouncer."""
    return pgbouncer.url(urlsplit(postgres_url).path.lstrip("/"))


@pytest.fixture(scope="module")
def bounced_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    pgbouncer: PgBouncer,
    temporal_env: WorkflowEnvironment,
) -> Iterator[RunningStack]:
    """Sandbox PSP, a worker and an API whose database connections all go through PgBouncer."""
    logs = tmp_path_factory.mktemp("bounced")
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    psp = SandboxPSPProcess(
        logs / "sandbox_psp.sqlite3", f"{api_url}/v1/webhooks/providers", env=dict(TEST_ENV)
    )
    psp.start()
    task_queue = f"paysaga-pgbouncer-{uuid.uuid4()}"
    database_url = bounced_url(pgbouncer, postgres_url)
    env = {
        **STACK_ENV,
        "PAYSAGA_DATABASE_URL": database_url,
        "PAYSAGA_DATABASE_PREPARED_STATEMENTS": "false",
        "PAYSAGA_DATABASE_LISTEN_URL": postgres_url,
        "PAYSAGA_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PAYSAGA_TASK_QUEUE": task_queue,
        "PAYSAGA_PSP_URL": psp.url,
        "PAYSAGA_API_PORT": str(api_port),
        "PAYSAGA_DATA_DIR": str(logs),
        "PAYSAGA_WORKER_METRICS_ADDRESS": "",
    }
    worker = Service("worker", [sys.executable, "-m", "worker"], env, logs / "worker.log")
    api = Service(
        "api", [sys.executable, "-m", "api"], env, logs / "api.log", ready_url=f"{api_url}/healthz"
    )
    stack = RunningStack(api_url, database_url, task_queue, psp, api, worker)
    try:
        worker.start()
        api.start()
        yield stack
    finally:
        stack.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def api(bounced_stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    async with httpx.AsyncClient(
        base_url=bounced_stack.api_url, headers=headers, timeout=30
    ) as client:
        yield client


def pgbouncer_transactions(pgbouncer: PgBouncer, database: str) -> int:
    """PgBouncer's count of transactions it carried to `database` (its console's SHOW STATS)."""
    with psycopg.connect(pgbouncer.admin_url, autocommit=True, prepare_threshold=None) as conn:
        cur = conn.execute("SHOW STATS")
        columns = [c.name for c in cur.description or []]
        for row in cur.fetchall():
            stats = dict(zip(columns, row, strict=True))
            if stats["database"] == database:
                return int(stats["total_xact_count"])
    return 0


async def test_a_deposit_saga_runs_through_pgbouncer(
    api: httpx.AsyncClient, bounced_stack: RunningStack, pgbouncer: PgBouncer
) -> None:
    database = urlsplit(bounced_stack.database_url).path.lstrip("/")
    before = pgbouncer_transactions(pgbouncer, database)
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 2_500,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert response.status_code == 202, response.text
    deposit = await wait_terminal(api, response.json()["id"])
    assert deposit["status"] == "succeeded"
    assert await balance_of(api, customer["id"], "EUR") == {
        "posted": 2_500,
        "held": 0,
        "available": 2_500,
    }
    assert len(succeeded_operations(bounced_stack, deposit["id"], "charge")) == 1
    assert pgbouncer_transactions(pgbouncer, database) > before


async def test_a_wallet_bet_and_win_through_pgbouncer(api: httpx.AsyncClient) -> None:
    customer = await create_customer(api)
    body = {
        "customer_id": customer["id"],
        "amount": 1_000,
        "currency": "EUR",
        "payment_method": "pm_ok",
    }
    response = await post_payment(api, "/v1/deposits", body)
    assert (await wait_terminal(api, response.json()["id"]))["status"] == "succeeded"
    bet = {
        "customer_id": customer["id"],
        "game_provider": "pgbouncer-games",
        "transaction_id": f"bet-{uuid.uuid4()}",
        "game_id": "slots",
        "round_id": f"round-{uuid.uuid4()}",
        "amount": 300,
        "currency": "EUR",
    }
    placed = await api.post("/v1/wallet/bets", json=bet)
    assert placed.status_code == 200, placed.text
    assert placed.json()["balance"]["cash"] == 700
    again = await api.post("/v1/wallet/bets", json=bet)  # the provider's retry: the same answer
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    win = {
        "customer_id": customer["id"],
        "game_provider": "pgbouncer-games",
        "transaction_id": f"win-{uuid.uuid4()}",
        "bet_transaction_id": bet["transaction_id"],
        "amount": 500,
        "round_closed": True,
    }
    paid = await api.post("/v1/wallet/wins", json=win)
    assert paid.status_code == 200, paid.text
    assert paid.json()["balance"]["cash"] == 1_200
    wallet = await api.get(f"/v1/customers/{customer['id']}/wallet", params={"currency": "EUR"})
    assert wallet.status_code == 200, wallet.text
    assert wallet.json()["cash"] == 1_200


async def test_the_same_reads_again_and_again_through_pgbouncer(api: httpx.AsyncClient) -> None:
    """psycopg would prepare a query from its 5th run: the same reads, many times, at once."""
    customer = await create_customer(api)

    async def read(n: int) -> list[int]:
        paths = [f"/v1/customers/{customer['id']}", f"/v1/customers/{customer['id']}/balances"]
        return [(await api.get(paths[n % 2])).status_code for _ in range(8)]

    answers = await asyncio.gather(*(read(n) for n in range(6)))
    assert {code for codes in answers for code in codes} == {200}


async def test_a_pool_with_prepared_statements_off_never_prepares(
    monkeypatch: pytest.MonkeyPatch, pgbouncer: PgBouncer, postgres_url: str
) -> None:
    monkeypatch.setenv("PAYSAGA_DATABASE_PREPARED_STATEMENTS", "false")
    get_settings.cache_clear()
    try:
        assert connection_kwargs() == {"prepare_threshold": None}
        pool = await open_pool(bounced_url(pgbouncer, postgres_url), 4, 4)
    finally:
        get_settings.cache_clear()
    try:

        async def count_accounts() -> list[Any]:
            rows = []
            for _ in range(20):
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM ledger_accounts WHERE kind = %s", ("customer_wallet",)
                    )
                    rows.append(await cur.fetchone())
            return rows

        results = await asyncio.gather(*(count_accounts() for _ in range(4)))
        assert all(row is not None and row[0] >= 0 for rows in results for row in rows)
    finally:
        await pool.close()


@pytest.mark.parametrize("prepared", [True, False])
def test_prepared_statements_break_behind_pgbouncer_unless_turned_off(
    prepared: bool, postgres_url: str, tmp_path: Path
) -> None:
    """A statement psycopg prepared on one server connection, run again when PgBouncer gives
    the next transaction another one: "does not exist", unless prepared statements are off."""
    bouncer = start_pgbouncer(postgres_url, tmp_path / "pgbouncer")
    url = bounced_url(bouncer, postgres_url)
    kwargs: dict[str, Any] = {} if prepared else {"prepare_threshold": None}
    try:
        with (
            psycopg.connect(url, autocommit=True, **kwargs) as client,
            psycopg.connect(url, autocommit=True) as other,
        ):
            for n in range(10):  # alone: always the pool's one server connection; prepared
                client.execute("SELECT %s::int + 1", (n,))
            with other.transaction():
                other.execute("SELECT 1")  # holds that server connection
                if prepared:
                    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                        client.execute("SELECT %s::int + 1", (10,))
                else:
                    assert client.execute("SELECT %s::int + 1", (10,)).fetchone() == (11,)
    finally:
        bouncer.stop()
