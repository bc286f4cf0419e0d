"""Every paysaga process reaches Temporal as Temporal's environment configuration says: a profile of
a TOML file, the standard TEMPORAL_* variables, the PAYSAGA_TEMPORAL_* settings over both.

The server end is a mutual-TLS front of the session's dev server with self-signed certificates
made by the test (tests/temporal_tls.py); the compose file's script is checked too.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from paysaga.settings import Settings
from paysaga.temporal_connection import (
    TemporalConfigError,
    connect_temporal,
    temporal_connect_config,
)
from tests.temporal_tls import SERVER_NAME, TlsFront, issue_certificates, tls_front_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_machine_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither this machine's Temporal profile nor its TEMPORAL_* variables leak into a test."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "PAYSAGA_TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-profile.toml"))


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    return issue_certificates(tmp_path / "temporal-tls")


@pytest_asyncio.fixture(loop_scope="session")
async def tls_front(temporal_env: WorkflowEnvironment, certs: Path) -> AsyncIterator[TlsFront]:
    target = temporal_env.client.service_client.config.target_host
    async with tls_front_of(target, certs) as front:
        yield front


def dev_settings(**values: Any) -> Settings:
    return Settings(environment="development", **values)


def mutual_tls(front: TlsFront) -> dict[str, Any]:
    return {
        "temporal_address": front.address,
        "temporal_tls_cert": front.certs / "client.crt",
        "temporal_tls_key": front.certs / "client.key",
        "temporal_tls_ca": front.certs / "ca.crt",
        "temporal_tls_server_name": SERVER_NAME,
    }


async def assert_reaches_temporal(settings: Settings) -> None:
    client = await connect_temporal(settings)
    assert await client.service_client.check_health()
    assert (await client.count_workflows()).count >= 0


@pytest.mark.asyncio(loop_scope="session")
async def test_profile_of_a_toml_file_reaches_temporal_over_mutual_tls(
    tls_front: TlsFront, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text(
        f"""
[profile.default]
address = "127.0.0.1:1"

[profile.production]
address = "{tls_front.address}"
namespace = "default"

[profile.production.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{tls_front.certs / "ca.crt"}"
client_cert_path = "{tls_front.certs / "client.crt"}"
client_key_path = "{tls_front.certs / "client.key"}"
"""
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    monkeypatch.setenv("TEMPORAL_PROFILE", "production")

    await assert_reaches_temporal(dev_settings())


@pytest.mark.asyncio(loop_scope="session")
async def test_standard_temporal_variables_reach_temporal_over_mutual_tls(
    tls_front: TlsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", tls_front.address)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tls_front.certs / "client.crt"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(tls_front.certs / "client.key"))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tls_front.certs / "ca.crt"))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", SERVER_NAME)

    await assert_reaches_temporal(dev_settings())


@pytest.mark.asyncio(loop_scope="session")
async def test_paysaga_settings_reach_temporal_over_mutual_tls(tls_front: TlsFront) -> None:
    await assert_reaches_temporal(dev_settings(**mutual_tls(tls_front)))


@pytest.fixture
def compose_certs(tmp_path: Path) -> Path:
    """Certificates of the script docker-compose.yml's users run (deploy/temporal-tls.sh)."""
    folder = tmp_path / "compose-tls"
    script = ROOT / "deploy" / "temporal-tls.sh"
    subprocess.run(["sh", str(script), str(folder)], check=True, capture_output=True)
    return folder


@pytest.mark.asyncio(loop_scope="session")
async def test_certificates_of_the_compose_script_reach_temporal(
    temporal_env: WorkflowEnvironment, compose_certs: Path
) -> None:
    target = temporal_env.client.service_client.config.target_host
    async with tls_front_of(target, compose_certs) as front:
        await assert_reaches_temporal(dev_settings(**mutual_tls(front)))


@pytest.mark.asyncio(loop_scope="session")
async def test_client_without_a_certificate_is_refused(tls_front: TlsFront) -> None:
    server_only = {**mutual_tls(tls_front), "temporal_tls_cert": None, "temporal_tls_key": None}
    with pytest.raises(RuntimeError):
        await connect_temporal(dev_settings(**server_only))


@pytest.mark.asyncio(loop_scope="session")
async def test_client_without_tls_is_refused(tls_front: TlsFront) -> None:
    with pytest.raises(RuntimeError):
        await connect_temporal(dev_settings(temporal_address=tls_front.address))


@pytest.mark.asyncio(loop_scope="session")
async def test_client_trusting_another_ca_is_refused(tls_front: TlsFront, tmp_path: Path) -> None:
    other = issue_certificates(tmp_path / "other")
    with pytest.raises(RuntimeError):
        await connect_temporal(
            dev_settings(**{**mutual_tls(tls_front), "temporal_tls_ca": other / "ca.crt"})
        )


def test_api_key_is_sent_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ns.acct")
    monkeypatch.setenv("TEMPORAL_API_KEY", "temporal-api-key-for-tests")

    config = temporal_connect_config(dev_settings())

    assert config["target_host"] == "ns.acct.tmprl.cloud:7233"
    assert config["namespace"] == "ns.acct"
    assert config["api_key"] == "temporal-api-key-for-tests"
    assert config["tls"] is True


def test_api_key_in_clear_is_refused() -> None:
    settings = dev_settings(temporal_api_key="key", temporal_tls=False)
    with pytest.raises(TemporalConfigError, match="never sent in clear"):
        temporal_connect_config(settings)


def test_paysaga_settings_win_over_the_temporal_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "from-profile:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "profile-ns")
    monkeypatch.setenv("TEMPORAL_API_KEY", "profile-key")

    # The dev stack's children: its own plain dev server, whatever this machine's profile says.
    settings = dev_settings(
        temporal_address="127.0.0.1:7233", temporal_tls=False, temporal_api_key=""
    )
    config = temporal_connect_config(settings)

    assert config["target_host"] == "127.0.0.1:7233"
    assert config["namespace"] == "profile-ns"
    assert config.get("api_key") is None
    assert config["tls"] is False


def test_without_any_configuration_the_local_server() -> None:
    config = temporal_connect_config(dev_settings())

    assert (config["target_host"], config["namespace"]) == ("127.0.0.1:7233", "default")
    assert not config.get("tls")


def test_unknown_profile_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    with pytest.raises(TemporalConfigError, match="Profile 'staging' not found"):
        temporal_connect_config(dev_settings())


def test_missing_certificate_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "client.crt"
    settings = dev_settings(temporal_tls_cert=missing, temporal_tls_key=tmp_path / "client.key")
    with pytest.raises(TemporalConfigError, match=re.escape(str(missing))):
        temporal_connect_config(settings)


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="PAYSAGA_TEMPORAL_TLS_KEY"):
        Settings(environment="development", temporal_tls_cert=Path("/tls/client.crt"))


def test_every_temporal_client_connects_through_the_helper() -> None:
    # Processes, jobs and the bench (not devtools/, the dev stack, which runs its plain server).
    sources = [
        ROOT / "worker.py",
        *(ROOT / "api").rglob("*.py"),
        *(ROOT / "paysaga").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    direct = [
        str(path.relative_to(ROOT))
        for path in sources
        if path.name != "temporal_connection.py"
        and re.search(r"Client\.connect\(", path.read_text())
    ]
    assert direct == []
