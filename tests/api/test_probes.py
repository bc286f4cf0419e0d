"""The API's probes: `/livez` and `/readyz` stay up while Temporal is down; `/healthz` says so.
On SIGTERM the API finishes the requests in flight before it exits (PAYSAGA_API_SHUTDOWN_SECONDS).

A Kubernetes liveness or readiness probe on the deep `/healthz` would restart, or take out of
their Service, every API pod at once when Temporal blips: the shallow probes must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from devtools.stack import TEMPORAL_DEV_SERVER_FLAGS, free_port, installed_binary
from domain import search_attributes
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


class StallingFront:
    """A TCP front of the dev server that can stop forwarding: Temporal then hangs, not fails."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        self.stalled = False
        self.held = asyncio.Event()  # set once a request reached the stalled front

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if upstream and self.stalled:
                    self.held.set()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.port)
        await asyncio.gather(
            self._pipe(reader, server_w, upstream=True),
            self._pipe(server_r, writer, upstream=False),
        )

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.mark.asyncio(loop_scope="session")
async def test_sigterm_lets_the_request_in_flight_finish(
    postgres_url: str, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    front = StallingFront(temporal_env.client.service_client.config.target_host)
    port = free_port()
    env = {
        **STACK_ENV,
        "PAYSAGA_DATABASE_URL": postgres_url,
        "PAYSAGA_TEMPORAL_ADDRESS": await front.start(),
        "PAYSAGA_API_PORT": str(port),
        "PAYSAGA_DATA_DIR": str(tmp_path),
    }
    url = f"http://127.0.0.1:{port}"
    api = Service("drain-api", [sys.executable, "-m", "api"], env, tmp_path / "api.log")
    api.ready_url = f"{url}/readyz"
    await asyncio.to_thread(api.start)
    try:
        assert api.process is not None
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            front.stalled = True  # /healthz now waits on Temporal (2 s at most)
            in_flight = asyncio.create_task(http.get("/healthz"))
            await front.held.wait()
            api.process.send_signal(signal.SIGTERM)
            response = await in_flight
            exit_code = await asyncio.to_thread(api.process.wait, 30)
    finally:
        api.stop()
        front.server.close()

    assert response.status_code == 503
    assert response.json()["temporal"] == "error: TimeoutError"
    # uvicorn re-raises the SIGTERM once it has shut down cleanly: the status says "terminated".
    assert exit_code in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in (tmp_path / "api.log").read_text()
