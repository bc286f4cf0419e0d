"""The API's probes: `/livez` and `/readyz` stay up while Temporal is down; `/healthz` says so.

A Kubernetes liveness or readiness probe on the deep `/healthz` would restart, or take out of
their Service, every API pod at once when Temporal blips: the shallow probes must not.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes
from paysaga.devstack.stack import TEMPORAL_DEV_SERVER_FLAGS, free_port, installed_binary
from tests.stack import STACK_ENV, Service


@dataclass
class ApiOnItsOwnTemporal:
    url: str
    temporal: WorkflowEnvironment


@pytest_asyncio.fixture(loop_scope="session")
async def api_and_temporal(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiOnItsOwnTemporal]:
    """An API process on the session's database and a Temporal dev server of its own."""
    folder = tmp_path_factory.mktemp("probes")
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        dev_server_database_filename=str(folder / "temporal.db"),
        port=free_port(),
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=TEMPORAL_DEV_SERVER_FLAGS,
    )
    port = free_port()
    env = {
        **STACK_ENV,
        "PAYSAGA_DATABASE_URL": postgres_url,
        "PAYSAGA_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_DATA_DIR": str(folder),
    }
    url = f"http://127.0.0.1:{port}"
    api = Service("probes-api", [sys.executable, "-m", "api"], env, folder / "api.log")
    api.ready_url = f"{url}/readyz"
    api.start()
    try:
        yield ApiOnItsOwnTemporal(url, temporal)
    finally:
        api.stop()
        await temporal.shutdown()


@pytest.mark.asyncio(loop_scope="session")
async def test_probes_stay_up_while_temporal_is_down(api_and_temporal: ApiOnItsOwnTemporal) -> None:
    async with httpx.AsyncClient(base_url=api_and_temporal.url, timeout=10) as http:
        before = [await http.get(path) for path in ("/livez", "/readyz", "/healthz")]
        await api_and_temporal.temporal.shutdown()
        live, ready, health = [await http.get(path) for path in ("/livez", "/readyz", "/healthz")]

    assert [r.status_code for r in before] == [200, 200, 200]
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert health.json()["database"] == "ok"
    assert health.json()["temporal"].startswith("error")


@pytest.mark.asyncio(loop_scope="session")
async def test_probes_need_no_key_and_are_documented(
    api_and_temporal: ApiOnItsOwnTemporal,
) -> None:
    async with httpx.AsyncClient(base_url=api_and_temporal.url, timeout=10) as http:
        schema = (await http.get("/openapi.json")).json()

    assert {"/livez", "/readyz", "/healthz"} <= set(schema["paths"])
    assert "security" not in schema["paths"]["/readyz"]["get"]
