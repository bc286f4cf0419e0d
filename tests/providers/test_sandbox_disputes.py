"""The sandbox adapter's dispute calls, `pm_no_refund` and dispute settlement lines, against the
real sandbox PSP process."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from temporalio.converter import DataConverter

from devtools.stack import free_port
from providers.base import (
    SETTLEMENT_DIRECTIONS,
    DisputeProvider,
    DisputeState,
    DisputeStatus,
    Outcome,
    ProviderConfigurationError,
    ProviderError,
    ProviderRequestRejected,
    ProviderUnavailable,
)
from providers.sandbox import SandboxProvider
from tests.providers.test_sandbox_adapter import settled
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
    def make(name: str = CARDS) -> SandboxProvider:
        return SandboxProvider(name, receiving_psp.url, client, 5.0)

    return make


async def succeeded_charge(psp: SandboxProvider, token: str = "pm_ok", amount: int = 1500) -> str:
    """A succeeded charge's idempotency key; its payment id is the part before the colon."""
    key = f"dep_{uuid.uuid4().hex[:12]}:charge"
    await psp.charge(
        idempotency_key=key,
        reference=key.split(":")[0],
        amount=amount,
        currency="EUR",
        payment_method=token,
    )
    assert (await settled(psp, key)).outcome == Outcome.succeeded
    return key


async def plant(
    psp_url: str, provider: str, charge_key: str, outcome: str, **changes: Any
) -> dict[str, Any]:
    """Open a dispute as the card network would (the sandbox's own endpoint)."""
    body = {"reference": charge_key.split(":")[0], "amount": 1000, "fee": 150, "outcome": outcome}
    async with httpx.AsyncClient(base_url=psp_url) as network:
        response = await network.post(f"/{provider}/_sandbox/disputes", json={**body, **changes})
    assert response.status_code == 201, response.text
    dispute: dict[str, Any] = response.json()
    return dispute


async def decided(psp: DisputeProvider, dispute_id: str) -> DisputeState:
    """Poll `dispute_status()` until the provider has closed the dispute."""
    for _ in range(500):
        state = await psp.dispute_status(dispute_id)
        if state.status.is_final:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError("the dispute was never decided")


@pytest.mark.parametrize("outcome", [DisputeStatus.won, DisputeStatus.lost])
async def test_submit_evidence_then_status_shows_planted_verdict(
    provider: Callable[..., SandboxProvider],
    receiving_psp: SandboxPSPProcess,
    outcome: DisputeStatus,
) -> None:
    cards = provider()
    charge_key = await succeeded_charge(cards)
    dispute = await plant(receiving_psp.url, CARDS, charge_key, outcome)

    state = await cards.submit_dispute_evidence(dispute["id"], "tracking number 123")

    assert state == DisputeState(
        provider=CARDS,
        dispute_id=dispute["id"],
        reference=charge_key.split(":")[0],
        charge_idempotency_key=charge_key,
        status=DisputeStatus.under_review,
        amount=1000,
        currency="EUR",
        fee=150,
        reason="fraudulent",
        evidence_due_by=dispute["evidence_due_by"],
        evidence_submitted_at=state.evidence_submitted_at,
    )
    assert state.evidence_submitted_at is not None
    assert (await decided(cards, dispute["id"])).status == outcome


async def test_accept_dispute_lost_at_once_and_second_answer_rejected(
    provider: Callable[..., SandboxProvider], receiving_psp: SandboxPSPProcess
) -> None:
    cards = provider()
    dispute = await plant(receiving_psp.url, CARDS, await succeeded_charge(cards), "won")

    assert (await cards.accept_dispute(dispute["id"])).status == DisputeStatus.lost

    for answer in (
        cards.accept_dispute(dispute["id"]),
        cards.submit_dispute_evidence(dispute["id"], "x"),
    ):
        with pytest.raises(ProviderRequestRejected) as raised:
            await answer
        assert (raised.value.status_code, raised.value.code) == (409, "dispute_not_open")
    assert (await cards.dispute_status(dispute["id"])).status == DisputeStatus.lost


async def test_dispute_status_of_unknown_dispute_rejected(
    provider: Callable[..., SandboxProvider],
) -> None:
    with pytest.raises(ProviderRequestRejected) as raised:
        await provider().dispute_status("dp_nope")
    assert (raised.value.status_code, raised.value.code) == (404, "dispute_not_found")
    with pytest.raises(ProviderConfigurationError):
        await provider("sandbox-nope").dispute_status("dp_nope")


async def test_dispute_calls_unavailable_on_network_trouble(client: httpx.AsyncClient) -> None:
    closed = SandboxProvider(CARDS, f"http://127.0.0.1:{free_port()}", client, 1.0)
    with pytest.raises(ProviderUnavailable):
        await closed.accept_dispute("dp_1")


@pytest.mark.parametrize("status_code", [429, 500, 502, 503])
async def test_dispute_calls_unavailable_on_server_errors(status_code: int) -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(status_code, json={"error": "x"}))
    async with httpx.AsyncClient(transport=answer) as client:
        psp = SandboxProvider(CARDS, "http://psp.invalid", client, 1.0)
        with pytest.raises(ProviderUnavailable):
            await psp.submit_dispute_evidence("dp_1", "proof")
        with pytest.raises(ProviderUnavailable):
            await psp.dispute_status("dp_1")


async def test_unreadable_dispute_answer_unavailable() -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "odd"}))
    async with httpx.AsyncClient(transport=answer) as client:
        with pytest.raises(ProviderUnavailable):
            await SandboxProvider(CARDS, "http://psp.invalid", client, 1.0).dispute_status("dp_1")


async def test_dispute_state_crosses_temporal_converter(
    provider: Callable[..., SandboxProvider], receiving_psp: SandboxPSPProcess
) -> None:
    cards = provider()
    dispute = await plant(receiving_psp.url, CARDS, await succeeded_charge(cards), "lost")
    state = await cards.dispute_status(dispute["id"])

    converter = DataConverter.default
    [decoded] = await converter.decode(await converter.encode([state]), [DisputeState])

    assert decoded == state and isinstance(decoded.status, DisputeStatus)
    assert dataclasses.asdict(state)["status"] == "needs_response"


async def test_refund_of_pm_no_refund_declined(provider: Callable[..., SandboxProvider]) -> None:
    cards = provider()
    charge_key = await succeeded_charge(cards, "pm_no_refund")
    refund_key = charge_key.replace("charge", "refund")

    refund = await cards.refund(
        idempotency_key=refund_key,
        reference=charge_key.split(":")[0],
        charge_idempotency_key=charge_key,
        amount=1500,
        currency="EUR",
    )

    assert (refund.outcome, refund.decline_code) == (Outcome.declined, "refund_declined")
    polled = await cards.status(refund_key)
    assert (polled.outcome, polled.decline_code) == (Outcome.declined, "refund_declined")


async def test_settlement_report_parses_dispute_lines(
    provider: Callable[..., SandboxProvider], receiving_psp: SandboxPSPProcess
) -> None:
    bank = provider(BANK)
    won_key, lost_key = await succeeded_charge(bank), await succeeded_charge(bank)
    won = await plant(receiving_psp.url, BANK, won_key, "won", amount=1200, fee=200)
    lost = await plant(receiving_psp.url, BANK, lost_key, "lost", amount=1500, fee=200)
    await bank.submit_dispute_evidence(won["id"], "proof")
    await bank.submit_dispute_evidence(lost["id"], "proof")
    await decided(bank, won["id"])
    await decided(bank, lost["id"])

    lines = await bank.settlement_report()

    def net(charge_key: str) -> dict[str, int]:
        reference = charge_key.split(":")[0]
        mine = [line for line in lines if line.reference == reference]
        return {line.kind: SETTLEMENT_DIRECTIONS[line.kind] * line.amount for line in mine}

    assert net(won_key) == {
        "charge": 1500,
        "dispute": -1200,
        "dispute_fee": -200,
        "dispute_reversal": 1200,
    }
    assert net(lost_key) == {"charge": 1500, "dispute": -1500, "dispute_fee": -200}
    assert {line.operation_id for line in lines if line.kind.startswith("dispute")} >= {
        won["id"],
        lost["id"],
    }


async def test_settlement_report_with_unknown_kind_refused() -> None:
    row = {"id": "x", "kind": "mystery", "reference": "dep_1", "amount": 1, "currency": "EUR"}
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": [row]}))
    async with httpx.AsyncClient(transport=answer) as client:
        with pytest.raises(ProviderError, match="mystery"):
            await SandboxProvider(CARDS, "http://psp.invalid", client, 1.0).settlement_report()
