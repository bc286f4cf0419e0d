"""docker-compose.yml, the Dockerfile and the README's deployment section agree with the code.

No Docker engine needed: the files are parsed and every command, variable and dependency they
name is checked against the project. `paysaga migrate` and `paysaga search-attributes` run for
real against the embedded PostgreSQL and a fresh Temporal dev server.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import pytest_asyncio
import yaml
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from devtools.stack import free_port, installed_binary
from domain import search_attributes
from paysaga.cli.deploy import register_search_attributes, wanted_search_attributes
from paysaga.cli.main import build_parser, main
from paysaga.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def paysaga_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services running the image built from this repository's Dockerfile."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def dockerfile_instruction(name: str) -> list[str]:
    """The exec-form arguments of the Dockerfile's (last) instruction `name`."""
    found = re.findall(rf"^{name}\s+(\[.*\])\s*$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert found, f"the Dockerfile has no exec-form {name}"
    argv = json.loads(found[-1])
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return dockerfile_instruction("CMD")
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def cli_subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("the paysaga parser has no subcommands")


def assert_command_exists(argv: list[str]) -> None:
    if argv[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(argv[2]) is not None, f"no module {argv[2]}"
    elif argv[0] == "paysaga":
        assert argv[1] in cli_subcommands(), f"no `paysaga {argv[1]}` command"
    else:
        raise AssertionError(f"unexpected command {argv}")


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def settings_variables() -> set[str]:
    """Every environment variable Settings reads: prefix + field name, and the aliases."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"PAYSAGA_{field_name.upper()}")
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if alias else []):
            names.add(str(choice).upper())
    return names


def test_paysaga_service_commands_exist_in_the_project(
    services: dict[str, dict[str, Any]],
) -> None:
    ours = paysaga_services(services)
    assert {"migrate", "api", "worker", "sandbox-psp", "search-attributes"} <= set(ours)
    for svc in ours.values():
        assert_command_exists(command_of(svc))


def test_python_healthchecks_compile(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")


def test_paysaga_variables_are_settings(services: dict[str, dict[str, Any]]) -> None:
    known = settings_variables()
    for name, svc in services.items():
        for variable in environment_of(svc):
            if variable.startswith("PAYSAGA_"):
                assert variable in known, f"{name}: {variable} is no field of Settings"


def test_network_addresses_are_reachable_between_containers(
    services: dict[str, dict[str, Any]],
) -> None:
    api, psp = environment_of(services["api"]), environment_of(services["sandbox-psp"])
    assert api["PAYSAGA_API_HOST"] == "0.0.0.0"
    assert psp["PAYSAGA_PSP_HOST"] == "0.0.0.0"
    assert api["PAYSAGA_PSP_URL"] == f"http://sandbox-psp:{psp['PAYSAGA_PSP_PORT']}"
    assert psp["PAYSAGA_PSP_WEBHOOK_URL"] == (
        f"http://api:{api['PAYSAGA_API_PORT']}/v1/webhooks/providers"
    )


def test_every_dependency_is_a_service(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dependency in svc.get("depends_on") or []:
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    one_shots = {
        dependency
        for svc in services.values()
        for dependency, spec in (svc.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }
    for name, svc in services.items():
        if name not in one_shots:
            assert "test" in (svc.get("healthcheck") or {}), f"{name} has no healthcheck"
    assert "HEALTHCHECK" in DOCKERFILE.read_text()


def test_mounted_deploy_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for svc in services.values():
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is missing"


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_temporal_uses_no_auto_setup_image(services: dict[str, dict[str, Any]]) -> None:
    images = [str(svc.get("image", "")) for svc in services.values()]
    assert not [image for image in images if "temporalio/auto-setup" in image]
    assert any(image.startswith("temporalio/server:") for image in images)
    assert any(image.startswith("temporalio/admin-tools:") for image in images)


def test_compose_registers_exactly_the_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {key.name: int(key.indexed_value_type) for key in search_attributes.ALL}
    assert {name: int(kind) for name, kind in wanted_search_attributes().items()} == expected
    registering = [
        name
        for name, svc in paysaga_services(services).items()
        if command_of(svc) == ["paysaga", "search-attributes"]
    ]
    assert registering
    # Nothing else registers attributes of its own with the temporal CLI.
    assert "search-attribute create" not in COMPOSE_FILE.read_text()
    for name in ("api", "worker"):
        assert services[name]["depends_on"][registering[0]] == {
            "condition": "service_completed_successfully"
        }


def test_dockerfile_builds_the_project_for_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, flags=re.MULTILINE)
    assert re.search(r"^RUN /opt/paysaga/bin/pip install .*", text, flags=re.MULTILINE)
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert_command_exists(dockerfile_instruction("CMD"))


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_and_deploy_guide_cover_the_compose_file(
    services: dict[str, dict[str, Any]],
) -> None:
    guide = (ROOT / "docs" / "guides" / "deploy.md").read_text()
    for name in services:
        assert f"`{name}`" in guide, f"the deploy guide never names the service {name}"
    assert "docs/guides/deploy.md" in readme_section("Deploy with docker-compose")
    assert "docker compose up -d --scale worker=" in readme_section("Scale workers")


# `paysaga migrate` and `paysaga search-attributes`, for real.


@pytest.fixture
def fresh_database_url(postgres_url: str) -> Iterator[str]:
    """An empty database on the session's PostgreSQL server, dropped afterwards."""
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(postgres_url)
    yield urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def run_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str], **env: str) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        return main(argv)
    finally:
        get_settings.cache_clear()


def test_migrate_brings_an_empty_database_to_head_then_does_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_database_url: str
) -> None:
    assert run_cli(monkeypatch, ["migrate"], PAYSAGA_DATABASE_URL=fresh_database_url) == 0
    assert "migrated from revision (empty) to" in capsys.readouterr().out
    assert run_cli(monkeypatch, ["migrate"], PAYSAGA_DATABASE_URL=fresh_database_url) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_migrate_fails_without_a_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(monkeypatch, ["migrate"], PAYSAGA_DATABASE_URL="") == 1
    assert "PAYSAGA_DATABASE_URL" in capsys.readouterr().err


@pytest_asyncio.fixture(loop_scope="session")
async def bare_temporal(tmp_path: Path) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server without paysaga's search attributes, like a new cluster."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        dev_server_database_filename=str(tmp_path / "temporal.db"),
        port=free_port(),
    )
    yield env
    await env.shutdown()


async def test_register_search_attributes_adds_the_missing_ones_once(
    bare_temporal: WorkflowEnvironment,
) -> None:
    client = bare_temporal.client
    first = await register_search_attributes(client, "default")
    assert sorted(first.added) == sorted(key.name for key in search_attributes.ALL)
    again = await register_search_attributes(client, "default")
    assert again.added == []
    assert sorted(again.existing) == sorted(first.added)

    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    registered = {
        name: int(kind)
        for name, kind in listed.custom_attributes.items()
        if name in wanted_search_attributes()
    }
    assert registered == {key.name: int(key.indexed_value_type) for key in search_attributes.ALL}
