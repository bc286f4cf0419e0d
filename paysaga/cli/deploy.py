"""One-shot steps of a deployment: migrate the ledger database, register the search attributes."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

import psycopg
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from domain import search_attributes
from paysaga.cli.failures import CliFailure, describe_failure, require_database
from paysaga.database import run_migrations
from paysaga.settings import Settings
from paysaga.temporal_connection import TemporalConfigError, connect_temporal


class DeployError(CliFailure):
    """A deployment step cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class MigrationResult:
    """The schema revision of the ledger database before and after `migrate`."""

    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.before == self.after:
            return f"ledger database already at revision {self.after}; nothing to do"
        return f"ledger database migrated from revision {self.before or '(empty)'} to {self.after}"


def schema_revision(database_url: str) -> str | None:
    """The Alembic revision the database is at, or None for a database never migrated."""
    with psycopg.connect(database_url) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return str(row[0]) if row else None


def migrate(
    database_url: str, lock_timeout_seconds: float = 10.0, revision: str = "head"
) -> MigrationResult:
    """Bring the ledger database to the latest revision; safe to run on every deployment."""
    if not database_url:
        raise DeployError(
            "PAYSAGA_DATABASE_URL is not set",
            "migrate needs the ledger database",
            "set it to the ledger database's URL",
        )
    require_database(database_url)
    before = schema_revision(database_url)
    run_migrations(database_url, revision, lock_timeout_seconds)
    return MigrationResult(before, schema_revision(database_url))


def wanted_search_attributes() -> dict[str, IndexedValueType.ValueType]:
    """Every custom search attribute of paysaga by name, with its Temporal index type."""
    return {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in search_attributes.ALL
    }


@dataclass
class RegistrationResult:
    """What `register_search_attributes` found on the cluster and what it added."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    def describe(self) -> str:
        added = ", ".join(self.added) or "none"
        existing = ", ".join(self.existing) or "none"
        return f"search attributes added: {added}; already registered: {existing}"


async def register_search_attributes(client: Client, namespace: str) -> RegistrationResult:
    """Add the attributes the namespace lacks; an attribute of another type is an error."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    present = dict(listed.custom_attributes)
    result = RegistrationResult()
    missing: dict[str, IndexedValueType.ValueType] = {}
    for name, kind in wanted_search_attributes().items():
        if name not in present:
            missing[name] = kind
        elif present[name] != kind:
            raise DeployError(
                f"search attribute {name} exists in namespace {namespace} as "
                f"{IndexedValueType.Name(present[name])}, paysaga needs {IndexedValueType.Name(kind)}"
            )
        else:
            result.existing.append(name)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        result.added = list(missing)
    return result


def run_deploy_step(command: str, settings: Settings, revision: str = "head") -> int:
    """`paysaga migrate` or `paysaga search-attributes`: print what was done, 1 on failure."""
    try:
        if command == "migrate":
            result = migrate(
                settings.database_url, settings.migration_lock_timeout_seconds, revision
            )
            print(result.describe(), flush=True)
        else:
            print(asyncio.run(_register(settings)).describe(), flush=True)
    except Exception as exc:  # a one-shot job: one line saying why, and a failing status
        print(describe_failure(command, exc), file=sys.stderr)
        return 1
    return 0


async def _register(settings: Settings) -> RegistrationResult:
    try:
        client = await connect_temporal(settings)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        if isinstance(exc, TemporalConfigError):
            raise
        raise CliFailure(
            "cannot reach Temporal",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            "check its address, TLS and API key (the Temporal profile, TEMPORAL_*,"
            " PAYSAGA_TEMPORAL_*)",
        ) from exc
    return await register_search_attributes(client, client.namespace)
