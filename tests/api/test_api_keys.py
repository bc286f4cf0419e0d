"""API keys through the API: listed without their secrets and revoked, by the platform for any
merchant and by an ops key for its own; a revoked key is refused by the next request in the API
process that revoked it, and in every other once its NOTIFY arrives, however long the processes
remember keys."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio

from devtools.stack import free_port
from paysaga.cli import keys
from paysaga.settings import DEV_MERCHANT_KEY, DEV_PLATFORM_KEY
from paysaga.store.api_keys import REVOKED_CHANNEL
from tests.api.key_revocation import answer_once_revocation_heard
from tests.events.api_merchants import client
from tests.stack import Service, Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")

LISTED_FIELDS = {"id", "merchant_id", "name", "prefix", "scopes", "created_at", "revoked_at"}


@dataclass
class MerchantKeys:
    id: str
    secrets: dict[str, str]  # key id -> secret, as created


@pytest_asyncio.fixture(loop_scope="session")
async def platform(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, DEV_PLATFORM_KEY) as platform_client:
        yield platform_client


async def new_merchant(platform: httpx.AsyncClient, *scope_sets: list[str]) -> MerchantKeys:
    """A merchant of the test's own with one key per scope set."""
    created = await platform.post("/v1/merchants", json={"name": f"Brand {uuid.uuid4()}"})
    assert created.status_code == 201, created.text
    merchant_id = created.json()["id"]
    secrets = {}
    for scopes in scope_sets:
        key = await platform.post(
            f"/v1/merchants/{merchant_id}/api-keys", json={"scopes": scopes, "name": "till 1"}
        )
        assert key.status_code == 201, key.text
        secrets[key.json()["id"]] = key.json()["secret"]
    return MerchantKeys(merchant_id, secrets)


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def assert_no_secret(response: httpx.Response, merchant: MerchantKeys) -> None:
    for secret in merchant.secrets.values():
        assert secret not in response.text
        assert secret[12:] not in response.text  # not even the part after the shown prefix
    assert "secret" not in response.text


async def test_platform_key_lists_and_revokes_any_merchants_keys_never_showing_a_secret(
    stack: Stack, platform: httpx.AsyncClient
) -> None:
    merchant = await new_merchant(platform, ["payments"], ["ops"])
    other = await new_merchant(platform, ["payments"])
    payments_key_id, ops_key_id = merchant.secrets
    (other_key_id,) = other.secrets

    listed = await platform.get(f"/v1/merchants/{merchant.id}/api-keys")
    first_page = await platform.get(f"/v1/merchants/{merchant.id}/api-keys", params={"limit": 1})
    revoked = await platform.delete(f"/v1/merchants/{merchant.id}/api-keys/{payments_key_id}")
    again = await platform.delete(f"/v1/merchants/{merchant.id}/api-keys/{payments_key_id}")
    others = await platform.delete(f"/v1/merchants/{merchant.id}/api-keys/{other_key_id}")
    missing = await platform.delete(f"/v1/merchants/{merchant.id}/api-keys/key_nobody")
    no_merchant = await platform.get("/v1/merchants/mer_nobody/api-keys")
    async with client(stack, merchant.secrets[payments_key_id]) as revoked_client:
        refused = await revoked_client.get("/v1/payments")
    async with client(stack, other.secrets[other_key_id]) as other_client:
        untouched = await other_client.get("/v1/payments")

    assert listed.status_code == 200, listed.text
    body: dict[str, Any] = listed.json()
    assert [k["id"] for k in body["data"]] == [payments_key_id, ops_key_id]
    assert body["has_more"] is False
    assert set(body["data"][0]) == LISTED_FIELDS
    assert [k["scopes"] for k in body["data"]] == [["payments"], ["ops"]]
    assert [k["revoked_at"] for k in body["data"]] == [None, None]
    assert body["data"][0]["prefix"] == merchant.secrets[payments_key_id][:12]
    assert_no_secret(listed, merchant)
    assert ([k["id"] for k in first_page.json()["data"]], first_page.json()["has_more"]) == (
        [payments_key_id],
        True,
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == payments_key_id and revoked.json()["revoked_at"] is not None
    assert_no_secret(revoked, merchant)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert_problem(others, 404, "not_found")  # another merchant's key, as a missing one
    assert_problem(missing, 404, "not_found")
    assert others.json()["title"] == missing.json()["title"]
    assert_problem(no_merchant, 404, "not_found")
    assert_problem(refused, 401, "unauthorized")
    assert untouched.status_code == 200, untouched.text


async def test_ops_key_lists_and_revokes_its_own_merchants_keys_only(
    stack: Stack, platform: httpx.AsyncClient
) -> None:
    merchant = await new_merchant(platform, ["ops"], ["payments"])
    other = await new_merchant(platform, ["payments", "ops"])
    ops_key_id, payments_key_id = merchant.secrets
    (other_key_id,) = other.secrets

    async with (
        client(stack, merchant.secrets[ops_key_id]) as ops,
        client(stack, merchant.secrets[payments_key_id]) as payments,
    ):
        listed = await ops.get("/v1/merchant/api-keys")
        by_payments_key = await payments.get("/v1/merchant/api-keys")
        others = await ops.delete(f"/v1/merchant/api-keys/{other_key_id}")
        missing = await ops.delete("/v1/merchant/api-keys/key_nobody")
        revoked = await ops.delete(f"/v1/merchant/api-keys/{payments_key_id}")
        refused = await payments.get("/v1/payments")
        platform_keys = await ops.get(f"/v1/merchants/{merchant.id}/api-keys")
    async with client(stack, DEV_MERCHANT_KEY) as dev:
        by_dev_merchant = await dev.get(f"/v1/merchants/{merchant.id}/api-keys")
    async with client(stack, other.secrets[other_key_id]) as other_client:
        untouched = await other_client.get("/v1/payments")

    assert listed.status_code == 200, listed.text
    assert [k["id"] for k in listed.json()["data"]] == [ops_key_id, payments_key_id]
    assert {k["merchant_id"] for k in listed.json()["data"]} == {merchant.id}
    assert_no_secret(listed, merchant)
    assert_problem(by_payments_key, 403, "forbidden")
    assert_problem(others, 404, "not_found")
    assert_problem(missing, 404, "not_found")
    assert others.json()["title"] == missing.json()["title"]
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_problem(refused, 401, "unauthorized")
    assert_problem(platform_keys, 403, "forbidden")
    assert_problem(by_dev_merchant, 403, "forbidden")
    assert untouched.status_code == 200, untouched.text


@dataclass
class ApiProcess:
    url: str
    service: Service


@pytest.fixture
def two_api_processes(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """Two more API processes on the stack's database that remember a key for 5 minutes (the
    stack's own API is told to remember none)."""
    logs: Path = tmp_path_factory.mktemp("two_apis")
    processes = []
    try:
        for name in ("api-a", "api-b"):
            port = free_port()
            env = {
                **stack.api.env,
                "PAYSAGA_API_PORT": str(port),
                "PAYSAGA_API_KEY_CACHE_SECONDS": "300",
            }
            url = f"http://127.0.0.1:{port}"
            service = Service(
                name,
                [sys.executable, "-m", "api"],
                env,
                logs / f"{name}.log",
                ready_url=f"{url}/healthz",
            )
            processes.append(ApiProcess(url, service))
            service.start()
        yield processes[0], processes[1]
    finally:
        for process in processes:
            process.service.stop()


async def test_a_key_revoked_in_one_api_process_is_refused_there_at_once_and_in_every_other(
    stack: Stack, platform: httpx.AsyncClient, two_api_processes: tuple[ApiProcess, ApiProcess]
) -> None:
    a, b = two_api_processes
    merchant = await new_merchant(platform, ["payments", "ops"], ["payments"], ["payments"])
    ops_key_id, by_api_key_id, by_cli_key_id = merchant.secrets

    def on(process: ApiProcess, key_id: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {merchant.secrets[key_id]}"}
        return httpx.AsyncClient(base_url=process.url, headers=headers, timeout=30)

    async with (
        on(a, ops_key_id) as ops_on_a,
        on(a, by_api_key_id) as api_key_on_a,
        on(b, by_api_key_id) as api_key_on_b,
        on(a, by_cli_key_id) as cli_key_on_a,
        on(b, by_cli_key_id) as cli_key_on_b,
    ):
        for remembered in (api_key_on_a, api_key_on_b, cli_key_on_a, cli_key_on_b):
            assert (await remembered.get("/v1/payments")).status_code == 200
            assert (await remembered.get("/v1/payments")).status_code == 200  # from memory now

        revoked = await ops_on_a.delete(f"/v1/merchant/api-keys/{by_api_key_id}")
        assert revoked.status_code == 200, revoked.text
        next_on_a = await api_key_on_a.get("/v1/payments")  # the revoking process: at once
        next_on_b = await answer_once_revocation_heard(api_key_on_b, "/v1/payments")

        assert await keys.revoke_key(stack.database_url, by_cli_key_id) is not None  # the CLI's
        cli_next_on_b = await answer_once_revocation_heard(cli_key_on_b, "/v1/payments")
        cli_next_on_a = await answer_once_revocation_heard(cli_key_on_a, "/v1/payments")

    for refused in (next_on_b, next_on_a, cli_next_on_b, cli_next_on_a):
        assert_problem(refused, 401, "unauthorized")


async def test_a_key_revoked_while_the_api_processes_cannot_hear_it_is_still_refused(
    stack: Stack, platform: httpx.AsyncClient, two_api_processes: tuple[ApiProcess, ApiProcess]
) -> None:
    a, b = two_api_processes
    merchant = await new_merchant(platform, ["payments"])
    ((key_id, secret),) = merchant.secrets.items()
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        httpx.AsyncClient(base_url=a.url, headers=headers, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=headers, timeout=30) as on_b,
    ):
        for remembered in (on_a, on_b, on_a, on_b):
            assert (await remembered.get("/v1/payments")).status_code == 200

        # Every process's listening connection cut, then the key revoked before any reconnects.
        async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f"LISTEN {REVOKED_CHANNEL}",),
            )
        assert await keys.revoke_key(stack.database_url, key_id) is not None
        next_on_b = await on_b.get("/v1/payments")
        next_on_a = await on_a.get("/v1/payments")

    assert_problem(next_on_b, 401, "unauthorized")
    assert_problem(next_on_a, 401, "unauthorized")
