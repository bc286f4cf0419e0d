"""The sandbox adapter's outcome mapping, against the real sandbox PSP process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from devtools.stack import free_port
from providers import (
    Outcome,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
    SandboxProvider,
    build_providers,
    select_provider,
)
from tests.psp_fixtures import SandboxPSPProcess

CARDS, BANK = "sandbox-cards", "sandbox-bank"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def provider(
    receiving_psp: SandboxPSPProcess, client: httpx.AsyncClient
) -> Callable[..., SandboxProvider]:
    def make(name: str = CARDS, timeout: float = 5.0) -> SandboxProvider:
        return SandboxProvider(name, receiving_psp.url, client, timeout)

    return make


def key() -> str:
    return f"dep_{uuid.uuid4().hex[:12]}:charge"


async def charge(provider: SandboxProvider, token: str, idempotency_key: str) -> ProviderResult:
    return await provider.charge(
        idempotency_key=idempotency_key,
        reference=idempotency_key.split(":")[0],
        amount=1500,
        currency="EUR",
        payment_method=token,
    )


async def settled(provider: SandboxProvider, idempotency_key: str) -> ProviderResult:
    """Poll `status()` until the outcome is final."""
    for _ in range(500):
        result = await provider.status(idempotency_key)
        if result.outcome not in (Outcome.pending, Outcome.unknown):
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("the operation never settled")


async def test_charge_pending_then_succeeded(provider: Callable[..., SandboxProvider]) -> None:
    cards, k = provider(), key()
    result = await charge(cards, "pm_ok", k)
    assert (result.provider, result.outcome) == (CARDS, Outcome.pending)
    assert result.operation_id and result.operation_id.startswith("ch_")

    final = await settled(cards, k)
    assert (final.outcome, final.operation_id) == (Outcome.succeeded, result.operation_id)


async def test_charge_declined_with_code(provider: Callable[..., SandboxProvider]) -> None:
    cards, k = provider(), key()
    await charge(cards, "pm_decline", k)
    final = await settled(cards, k)
    assert (final.outcome, final.decline_code) == (Outcome.declined, "card_declined")


async def test_charge_not_processed_while_flaky(provider: Callable[..., SandboxProvider]) -> None:
    cards, k = provider(), key()
    outcomes = [(await charge(cards, "pm_flaky", k)).outcome for _ in range(3)]
    assert outcomes == [Outcome.not_processed, Outcome.not_processed, Outcome.pending]


async def test_charge_not_processed_by_primary_down(
    provider: Callable[..., SandboxProvider],
) -> None:
    k = key()
    refused = await charge(provider(CARDS), "pm_primary_down", k)
    assert refused.outcome == Outcome.not_processed
    assert refused.detail == "provider_unavailable"
    assert (await provider(CARDS).status(k)).outcome == Outcome.not_processed

    bank = provider(BANK)
    assert (await charge(bank, "pm_primary_down", k)).outcome == Outcome.pending
    assert (await settled(bank, k)).outcome == Outcome.succeeded


async def test_charge_unknown_on_timeout_then_status_succeeded(
    provider: Callable[..., SandboxProvider],
) -> None:
    k = key()
    result = await charge(provider(timeout=0.3), "pm_timeout", k)
    assert result.outcome == Outcome.unknown
    assert (await settled(provider(), k)).outcome == Outcome.succeeded


async def test_charge_not_processed_on_closed_port(client: httpx.AsyncClient) -> None:
    closed = SandboxProvider(CARDS, f"http://127.0.0.1:{free_port()}", client, 1.0)
    assert (await charge(closed, "pm_ok", key())).outcome == Outcome.not_processed
    assert (await closed.status(key())).outcome == Outcome.unknown


async def test_status_of_unseen_key_not_processed(
    provider: Callable[..., SandboxProvider],
) -> None:
    assert (await provider().status(key())).outcome == Outcome.not_processed


async def test_invalid_request_raises_rejected(provider: Callable[..., SandboxProvider]) -> None:
    with pytest.raises(ProviderRequestRejected) as raised:
        await charge(provider(), "pm_unheard_of", key())
    assert (raised.value.status_code, raised.value.code) == (422, "unsupported_payment_method")
    assert isinstance(raised.value.__cause__, httpx.HTTPStatusError)


async def test_conflicting_replay_raises_rejected(
    provider: Callable[..., SandboxProvider],
) -> None:
    cards, k = provider(), key()
    first = await charge(cards, "pm_ok", k)
    assert (await charge(cards, "pm_ok", k)).operation_id == first.operation_id
    with pytest.raises(ProviderRequestRejected) as raised:
        await charge(cards, "pm_decline", k)
    assert raised.value.code == "idempotency_key_reused"


async def test_refund_succeeds_at_once(provider: Callable[..., SandboxProvider]) -> None:
    cards, k = provider(), key()
    await charge(cards, "pm_ok", k)
    await settled(cards, k)
    refund = await cards.refund(
        idempotency_key=k.replace("charge", "refund"),
        reference="refund",
        charge_idempotency_key=k,
        amount=1500,
        currency="EUR",
    )
    assert refund.outcome == Outcome.succeeded
    assert refund.operation_id and refund.operation_id.startswith("re_")


async def test_payout_pending_then_succeeded(provider: Callable[..., SandboxProvider]) -> None:
    bank, k = provider(BANK), key()
    result = await bank.payout(
        idempotency_key=k, reference="wd", amount=700, currency="GBP", destination="pm_ok"
    )
    assert result.outcome == Outcome.pending
    assert result.operation_id and result.operation_id.startswith("po_")
    assert (await settled(bank, k)).outcome == Outcome.succeeded


async def test_unserved_provider_raises_configuration_error(
    provider: Callable[..., SandboxProvider],
) -> None:
    with pytest.raises(ProviderConfigurationError):
        await charge(provider("sandbox-nope"), "pm_ok", key())


def answering(handler: Callable[[httpx.Request], httpx.Response]) -> SandboxProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SandboxProvider(CARDS, "http://psp.invalid", client, 1.0)


@pytest.mark.parametrize(
    ("status_code", "outcome"),
    [(500, Outcome.unknown), (502, Outcome.unknown), (503, Outcome.not_processed)],
)
async def test_server_errors_map_to_outcomes(status_code: int, outcome: Outcome) -> None:
    psp = answering(lambda request: httpx.Response(status_code, json={"error": "boom"}))
    assert (await charge(psp, "pm_ok", key())).outcome == outcome


async def test_dropped_connection_after_sending_is_unknown() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    assert (await charge(answering(drop), "pm_ok", key())).outcome == Outcome.unknown


async def test_build_providers_for_both_sandboxes(client: httpx.AsyncClient) -> None:
    providers = build_providers("http://psp.invalid", 1.0, client)
    assert list(providers) == [CARDS, BANK]
    assert select_provider(providers, BANK).name == BANK
    with pytest.raises(ProviderConfigurationError):
        select_provider(providers, "acme-pay")


@pytest.mark.parametrize("refusal", [429, 503])
async def test_refusal_of_a_call_the_psp_recorded_is_its_recorded_outcome(refusal: int) -> None:
    """A 503/429 after the PSP took the call (its books say so) must not allow a failover."""

    def took_it_then_refused(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(refusal, json={"error": "overloaded"})
        return httpx.Response(200, json={"id": "ch_1", "status": "pending"})

    result = await charge(answering(took_it_then_refused), "pm_ok", key())

    assert result.outcome == Outcome.pending
    assert result.operation_id == "ch_1"


async def test_refusal_with_no_record_at_the_psp_is_not_processed() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(429, json={"error": "rate_limited"})
        return httpx.Response(404, json={"error": "operation_not_found"})

    assert (await charge(answering(refused), "pm_ok", key())).outcome == Outcome.not_processed
