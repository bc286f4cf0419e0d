"""Adapters found by entry point: the sandbox's own, and a package installed with pip."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.providers import ChargeInput, PayoutInput, ProviderActivities
from providers.adapter import AdapterConfig, Capabilities
from providers.conformance import settled
from providers.registry import build_adapter, discover_adapters
from providers.sandbox import SandboxProvider
from tests.psp_fixtures import SandboxPSPProcess


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def test_sandbox_adapter_registered_by_entry_point() -> None:
    assert "sandbox" in discover_adapters()


def test_installed_plugin_found_without_change(example_plugin: Path) -> None:
    adapters = discover_adapters()
    assert {"sandbox", "example"} <= adapters.keys()
    assert adapters["example"].__module__ == "paysaga_example_psp"
    assert (example_plugin / "paysaga_example_psp").is_dir()


async def test_charge_routed_to_plugin_goes_through_it(
    example_plugin: Path, receiving_psp: SandboxPSPProcess, http: httpx.AsyncClient
) -> None:
    endpoint = f"{receiving_psp.url}/sandbox-cards"
    adapter = build_adapter("example", AdapterConfig("example-cards", endpoint, http, 5.0))
    assert isinstance(adapter.capabilities, Capabilities)
    assert not adapter.capabilities.payouts
    reference = f"dep_{uuid.uuid4().hex[:12]}"
    charge = ChargeInput("example-cards", f"{reference}:charge", reference, 990, "JPY", "pm_ok")

    result = await ActivityEnvironment().run(
        ProviderActivities({"example-cards": adapter}).charge, charge
    )

    assert result.provider == "example-cards"
    assert result.operation_id and result.operation_id.startswith("ch_")
    # The sandbox PSP took the charge: its own adapter reads it back by the same key.
    sandbox = SandboxProvider("sandbox-cards", receiving_psp.url, http, 5.0)
    final = await settled(sandbox, charge.idempotency_key)
    assert (final.outcome, final.operation_id) == ("succeeded", result.operation_id)


def test_unknown_adapter_refused(http: httpx.AsyncClient) -> None:
    from providers.base import ProviderConfigurationError

    with pytest.raises(ProviderConfigurationError, match="no adapter 'nowhere'"):
        build_adapter("nowhere", AdapterConfig("x", "http://psp.invalid", http, 1.0))


async def test_payout_to_adapter_without_payouts_fails_for_good(
    example_plugin: Path, http: httpx.AsyncClient
) -> None:
    adapter = build_adapter(
        "example", AdapterConfig("example-cards", "http://psp.invalid", http, 1.0)
    )
    payout = PayoutInput("example-cards", "wd_1:payout", "wd_1", 700, "EUR", "acct_1")

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            ProviderActivities({"example-cards": adapter}).payout, payout
        )

    # Final, as a rejection is: retrying an operation the adapter does not offer cannot help.
    assert (raised.value.type, raised.value.non_retryable) == ("ProviderRequestRejected", True)
