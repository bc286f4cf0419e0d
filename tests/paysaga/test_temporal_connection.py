"""Every paysaga process reaches Temporal over mutual TLS (or with an API key) when configured.

The Temporal dev server has no TLS options (`temporal server start-dev --help`), so the server end
of the TLS here is a small proxy that requires a client certificate from the CA and forwards the
decrypted gRPC to the session's dev server, as a TLS-terminating front of Temporal would. The
certificates come from deploy/temporal-tls.sh, the script docker-compose.yml's users run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from paysaga.settings import Settings
from paysaga.temporal_connection import connect_temporal

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TlsFront:
    """A TLS front of the dev server: its address and the certificates' folder."""

    address: str
    certs: Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def issue_certificates(folder: Path) -> Path:
    """A CA and its server and client certificates in `folder`, as compose's users make them."""
    script = ROOT / "deploy" / "temporal-tls.sh"
    subprocess.run(["sh", str(script), str(folder)], check=True, capture_output=True)
    return folder


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    return issue_certificates(tmp_path / "temporal-tls")


@pytest.fixture
def other_certs(tmp_path: Path) -> Path:
    return issue_certificates(tmp_path / "other")


@pytest_asyncio.fixture(loop_scope="session")
async def tls_front(temporal_env: WorkflowEnvironment, certs: Path) -> AsyncIterator[TlsFront]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.crt")
    context.load_cert_chain(certs / "server.crt", certs / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    context.set_alpn_protocols(["h2"])  # gRPC
    host, port = temporal_env.client.service_client.config.target_host.rsplit(":", 1)

    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    front_port = server.sockets[0].getsockname()[1]
    try:
        yield TlsFront(f"127.0.0.1:{front_port}", certs)
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def settings_for(front: TlsFront, **tls: Any) -> Settings:
    return Settings(environment="development", temporal_address=front.address, **tls)


def mutual_tls(front: TlsFront) -> dict[str, Any]:
    return {
        "temporal_tls_cert": front.certs / "client.crt",
        "temporal_tls_key": front.certs / "client.key",
        "temporal_tls_ca": front.certs / "ca.crt",
        "temporal_tls_server_name": "temporal",
    }


@pytest.mark.asyncio(loop_scope="session")
async def test_client_with_the_settings_certificate_reaches_temporal(tls_front: TlsFront) -> None:
    client = await connect_temporal(settings_for(tls_front, **mutual_tls(tls_front)))

    assert await client.service_client.check_health()
    assert (await client.count_workflows()).count >= 0


@pytest.mark.asyncio(loop_scope="session")
async def test_client_without_a_certificate_is_refused(tls_front: TlsFront) -> None:
    server_only = {
        "temporal_tls_ca": tls_front.certs / "ca.crt",
        "temporal_tls_server_name": "temporal",
    }
    with pytest.raises(RuntimeError):
        await connect_temporal(settings_for(tls_front, **server_only))


@pytest.mark.asyncio(loop_scope="session")
async def test_client_without_tls_is_refused(tls_front: TlsFront) -> None:
    with pytest.raises(RuntimeError):
        await connect_temporal(settings_for(tls_front))


@pytest.mark.asyncio(loop_scope="session")
async def test_client_trusting_another_ca_is_refused(
    tls_front: TlsFront, other_certs: Path
) -> None:
    wrong_ca = {**mutual_tls(tls_front), "temporal_tls_ca": other_certs / "ca.crt"}
    with pytest.raises(RuntimeError):
        await connect_temporal(settings_for(tls_front, **wrong_ca))


@pytest.mark.asyncio(loop_scope="session")
async def test_api_key_is_sent_over_tls(temporal_env: WorkflowEnvironment) -> None:
    # The dev server ignores the key; what matters is that the client carries it, over TLS.
    settings = Settings(
        environment="development",
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_api_key="temporal-api-key-for-tests",
    )

    client = await connect_temporal(settings, lazy=True)

    assert client.api_key == "temporal-api-key-for-tests"
    assert client.service_client.config.tls is True


def test_settings_read_temporal_cli_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same TEMPORAL_* variables the `temporal` CLI reads configure paysaga's clients.
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.crt")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/client.key")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/tls/ca.crt")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key")

    settings = Settings(environment="development")

    assert settings.temporal_tls_cert == Path("/tls/client.crt")
    assert settings.temporal_tls_key == Path("/tls/client.key")
    assert settings.temporal_tls_ca == Path("/tls/ca.crt")
    assert settings.temporal_tls_server_name == "temporal"
    assert settings.temporal_api_key == "key"


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="PAYSAGA_TEMPORAL_TLS_KEY"):
        Settings(environment="development", temporal_tls_cert=Path("/tls/client.crt"))


def test_every_temporal_client_connects_through_the_settings() -> None:
    # Processes and jobs of a deployment (not the dev stack's tools or benchmarks).
    sources = [ROOT / "worker.py", *(ROOT / "api").rglob("*.py"), *(ROOT / "paysaga").rglob("*.py")]
    direct = [
        str(path.relative_to(ROOT))
        for path in sources
        if "devstack" not in path.parts
        and path.name != "temporal_connection.py"
        and re.search(r"Client\.connect\(", path.read_text())
    ]
    assert direct == []
