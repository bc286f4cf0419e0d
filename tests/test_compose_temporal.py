"""docker-compose.yml keeps Temporal closed: not published, mutual TLS, a read-only UI.

No Docker engine here: the compose files are parsed. That the TLS settings and the certificates
of deploy/temporal-tls.sh really connect is tests/paysaga/test_temporal_connection.py's part.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_deploy import environment_of, paysaga_services

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PORTS_OVERRIDE = ROOT / "deploy" / "compose.temporal-ports.yml"
TEMPORAL_PORTS = {"7233", "8233", "8080"}  # frontend gRPC; the UI outside and inside
TEMPORAL_CLIENTS = ("api", "worker", "search-attributes")  # paysaga's, through Settings


def load(path: Path) -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return dict(loaded["services"])


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return load(COMPOSE_FILE)


def published(port: object) -> tuple[str, str, str]:
    """(host ip, host port, container port) of a short-syntax port mapping."""
    parts = str(port).split(":")
    if len(parts) == 1:
        return "0.0.0.0", parts[0], parts[0]
    if len(parts) == 2:
        return "0.0.0.0", parts[0], parts[1]
    return parts[0], parts[1], parts[2]


VOLUME = re.compile(r"^(?P<source>\$\{[^}]*\}|[^:]+):(?P<target>[^:]+)(?::(?P<mode>ro|rw))?$")


def mounts(service: dict[str, Any]) -> list[re.Match[str]]:
    """The short-syntax volumes of a service: source, target and mode of each."""
    found = [VOLUME.match(str(volume)) for volume in service.get("volumes") or []]
    assert all(found), service.get("volumes")
    return [match for match in found if match is not None]


def test_no_service_publishes_temporal_or_its_ui_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for port in service.get("ports") or []:
            _, host_port, container_port = published(port)
            assert {host_port, container_port}.isdisjoint(TEMPORAL_PORTS), f"{name}: {port}"
    assert not services["temporal"].get("ports")
    assert not services["temporal-ui"].get("ports")


def test_the_opt_in_publishes_temporal_and_its_ui_on_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    override = load(PORTS_OVERRIDE)

    assert set(override) == {"temporal", "temporal-ui"} <= set(services)
    host_ports = set()
    for service in override.values():
        for port in service["ports"]:
            host_ip, host_port, _ = published(port)
            assert host_ip == "127.0.0.1", port
            host_ports.add(host_port)
    assert host_ports == {"7233", "8233"}


def test_temporal_ui_is_read_only_and_its_login_is_wired(
    services: dict[str, dict[str, Any]],
) -> None:
    ui = environment_of(services["temporal-ui"])

    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    for variable in ("ENABLED", "PROVIDER_URL", "CLIENT_ID", "CLIENT_SECRET", "CALLBACK_URL"):
        assert f"TEMPORAL_AUTH_{variable}" in ui


def test_temporal_requires_client_certificates_from_the_mounted_folder(
    services: dict[str, dict[str, Any]],
) -> None:
    temporal = services["temporal"]
    env = environment_of(temporal)

    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"
    for variable in ("SERVER_CERT", "SERVER_KEY", "SERVER_CA_CERT", "FRONTEND_CERT"):
        assert_mounted_file(temporal, env[f"TEMPORAL_TLS_{variable}"])
    assert_mounted_file(temporal, env["TEMPORAL_TLS_FRONTEND_KEY"])
    assert_mounted_file(temporal, env["TEMPORAL_TLS_CLIENT1_CA_CERT"])


def test_every_client_of_temporal_presents_a_certificate(
    services: dict[str, dict[str, Any]],
) -> None:
    ours = paysaga_services(services)
    for name in TEMPORAL_CLIENTS:
        env = environment_of(ours[name])
        assert env["PAYSAGA_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["PAYSAGA_TEMPORAL_TLS_SERVER_NAME"] == "temporal"
        for setting in ("CERT", "KEY", "CA"):
            assert_mounted_file(ours[name], env[f"PAYSAGA_TEMPORAL_TLS_{setting}"])
    ui = environment_of(services["temporal-ui"])
    assert ui["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    for variable in ("CA", "CERT", "KEY"):
        assert_mounted_file(services["temporal-ui"], ui[f"TEMPORAL_TLS_{variable}"])
    cli = environment_of(services["temporal-namespace"])  # the temporal CLI's own variables
    assert cli["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    for variable in ("CLIENT_CERT_PATH", "CLIENT_KEY_PATH", "SERVER_CA_CERT_PATH"):
        assert_mounted_file(services["temporal-namespace"], cli[f"TEMPORAL_TLS_{variable}"])


def test_the_certificate_script_the_compose_file_names_exists(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "deploy/temporal-tls.sh" in COMPOSE_FILE.read_text()
    assert (ROOT / "deploy" / "temporal-tls.sh").is_file()
    ignored = (ROOT / ".gitignore").read_text() + (ROOT / ".dockerignore").read_text()
    assert ignored.count("deploy/temporal-tls") >= 2  # certificates stay out of git and images


def assert_mounted_file(service: dict[str, Any], path: str) -> None:
    """`path` lies in the certificates' folder (TEMPORAL_TLS_DIR), mounted read-only."""
    folders = [
        volume
        for volume in mounts(service)
        if "TEMPORAL_TLS_DIR" in volume["source"] and path.startswith(volume["target"] + "/")
    ]
    assert folders, f"{path} is in no mounted certificates folder: {service.get('volumes')}"
    assert all(volume["mode"] == "ro" for volume in folders)
