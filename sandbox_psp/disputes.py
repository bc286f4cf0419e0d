"""Disputes (chargebacks) at the sandbox PSP: planted as a card network opens them, answered by
the merchant through the provider's API, decided as planted, announced by signed webhooks.

- `POST /{provider}/_sandbox/disputes` (sandbox only) opens one on the provider's succeeded charge
  with that reference; `dispute.created` (sequence 1) goes out at once.
- `POST /{provider}/disputes/{id}/evidence` (only while `needs_response`): `under_review`, then
  after `psp_dispute_decision_seconds` the planted verdict, `dispute.won` or `dispute.lost`.
- `POST /{provider}/disputes/{id}/accept` (only while `needs_response`): `lost` at once.
- No answer by `evidence_due_by` (`psp_dispute_evidence_days` after planting, default 7; the
  plant's `evidence_due_in_seconds` overrides it): the provider closes it `lost` by itself, as
  networks do, and sends `dispute.lost`.
- `GET /{provider}/disputes/{id}`, `GET /{provider}/disputes?reference=`: its current state.

The verdict event (`dispute.won` / `dispute.lost`, sequence 2) is planned when the outcome is
known: at planting for the expiry, replaced by the answer's. A charge made with
`pm_duplicate_webhook` has each dispute event delivered twice and, after the verdict, a stale
`dispute.created` (its own event id, sequence 1). Settlement lines: see `dispute_settlement_lines`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt, StringConstraints

from sandbox_psp.behaviours import STALE_EVENT_LAG_SECONDS, TOKENS, Behaviour
from sandbox_psp.deps import (
    Amount,
    Currency,
    DispatcherDep,
    ProviderDep,
    PSPError,
    SettingsDep,
    StoreDep,
    Text,
)
from sandbox_psp.records import Dispute, Operation, isoformat
from sandbox_psp.store import OperationStore

SECONDS_PER_DAY = 86_400.0

Event = tuple[str, str, float]  # (event_id, body, deliver_at), as the outbox takes it


class DisputePlant(BaseModel):
    """Open a dispute on the succeeded charge with this reference; `outcome` is its verdict."""

    reference: Text
    amount: Amount
    currency: Currency | None = None  # the charge's; a different one is refused
    fee: Annotated[StrictInt, Field(ge=0, le=10**15)] = 0
    reason: Text = "fraudulent"
    outcome: Literal["won", "lost"]
    # Sandbox only: overrides `psp_dispute_evidence_days` for this dispute (tests of the due date).
    evidence_due_in_seconds: Annotated[float, Field(gt=0)] | None = None


class EvidenceRequest(BaseModel):
    """The merchant's evidence against a dispute."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


router = APIRouter()


@router.post("/{provider}/_sandbox/disputes", status_code=201)
async def plant_dispute(
    provider: ProviderDep,
    body: DisputePlant,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> dict[str, Any]:
    """Sandbox only: a card network opens a dispute; the provider sends `dispute.created`."""
    now = time.time()
    charge = _disputable_charge(store, provider, body, now)
    due_in = body.evidence_due_in_seconds or settings.psp_dispute_evidence_days * SECONDS_PER_DAY
    expiry_id, stale_id = _event_id(), _event_id()
    dispute = Dispute(
        provider=provider,
        id="dp_" + secrets.token_hex(12),
        reference=charge.reference,
        charge_id=charge.id,
        charge_idempotency_key=charge.idempotency_key,
        method=charge.method,
        amount=body.amount,
        currency=charge.currency,
        fee=body.fee,
        reason=body.reason,
        planted_outcome=body.outcome,
        created_at=now,
        evidence_due_by=now + due_in,
        responded_at=None,
        response=None,
        evidence_text=None,
        decided_at=now + due_in,
        final_status="lost",
        expiry_event_ids=json.dumps([expiry_id, stale_id]),
    )
    created = _event(dispute, _event_id(), "dispute.created", now, sequence=1)
    events = _repeated(dispute, [created]) + _verdict_events(dispute, expiry_id, stale_id)
    store.record_dispute(dispute, events)
    dispatcher.wake()
    return {**dispute.view(now), "planted_outcome": dispute.planted_outcome}


@router.get("/{provider}/disputes/{dispute_id}")
async def get_dispute(provider: ProviderDep, dispute_id: str, store: StoreDep) -> dict[str, Any]:
    """The dispute with its current status."""
    return _found(store, provider, dispute_id).view(time.time())


@router.get("/{provider}/disputes")
async def list_disputes(
    provider: ProviderDep, store: StoreDep, reference: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The provider's disputes, by merchant reference (the disputed payment's id)."""
    now = time.time()
    return {"data": [d.view(now) for d in store.disputes_by_reference(provider, reference)]}


@router.post("/{provider}/disputes/{dispute_id}/evidence")
async def submit_evidence(
    provider: ProviderDep,
    dispute_id: str,
    body: EvidenceRequest,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> dict[str, Any]:
    """Contest the dispute: `under_review`, then the planted verdict a decision delay later."""
    now = time.time()
    dispute = _open(store, provider, dispute_id, now)
    answered = replace(
        dispute,
        responded_at=now,
        response="evidence",
        evidence_text=body.text,
        decided_at=now + settings.psp_dispute_decision_seconds,
        final_status=dispute.planted_outcome,
    )
    return _record_response(store, dispatcher, dispute, answered, now)


@router.post("/{provider}/disputes/{dispute_id}/accept")
async def accept_dispute(
    provider: ProviderDep, dispute_id: str, store: StoreDep, dispatcher: DispatcherDep
) -> dict[str, Any]:
    """Accept the dispute: `lost` at once, `dispute.lost` sent."""
    now = time.time()
    dispute = _open(store, provider, dispute_id, now)
    answered = replace(
        dispute, responded_at=now, response="accept", decided_at=now, final_status="lost"
    )
    return _record_response(store, dispatcher, dispute, answered, now)


def dispute_settlement_lines(
    store: OperationStore, provider: str, upper: float, lower: float | None
) -> list[dict[str, Any]]:
    """The disputes' settlement report rows settled in (lower, upper], in settlement order.

    Amounts are positive, as every line's; the kind says which way the money went for the
    merchant (`providers.base.SettlementLine`): `dispute` (the disputed amount withdrawn) and
    `dispute_fee` (the network's fee, no line when 0) settle when the dispute opens, out;
    `dispute_reversal` (the amount given back) when it is won, in. A lost dispute adds nothing.
    """
    rows = [
        line
        for dispute in store.disputes_settling(provider, upper, lower)
        for line in dispute.settlement_lines()
        if (lower is None or line["settled_at"] > lower) and line["settled_at"] <= upper
    ]
    rows.sort(key=lambda line: (line["settled_at"], line["id"], line["kind"]))
    return [{**line, "settled_at": isoformat(line["settled_at"])} for line in rows]


def _disputable_charge(
    store: OperationStore, provider: str, body: DisputePlant, now: float
) -> Operation:
    charges = [op for op in store.by_reference(provider, body.reference) if op.kind == "charge"]
    if not charges:
        raise PSPError(404, "charge_not_found", "no charge with this reference")
    succeeded = [op for op in charges if op.is_settled(now) and op.final_status == "succeeded"]
    if not succeeded:
        raise PSPError(422, "charge_not_disputable", "only a succeeded charge can be disputed")
    charge = succeeded[0]
    if store.dispute_of_charge(provider, charge.idempotency_key) is not None:
        raise PSPError(409, "charge_already_disputed", "this charge is already disputed")
    if body.currency is not None and body.currency != charge.currency:
        raise PSPError(422, "currency_mismatch", "a dispute is in the charge's currency")
    disputable = charge.amount - store.refunded_amount(provider, charge.idempotency_key)
    if body.amount > disputable:
        raise PSPError(422, "amount_exceeds_charge", f"at most {disputable} can be disputed")
    return charge


def _found(store: OperationStore, provider: str, dispute_id: str) -> Dispute:
    dispute = store.get_dispute(provider, dispute_id)
    if dispute is None:
        raise PSPError(404, "dispute_not_found", "no dispute with this id")
    return dispute


def _open(store: OperationStore, provider: str, dispute_id: str, now: float) -> Dispute:
    dispute = _found(store, provider, dispute_id)
    if dispute.status(now) != "needs_response":
        raise PSPError(409, "dispute_not_open", f"the dispute is {dispute.status(now)}")
    return dispute


def _record_response(
    store: OperationStore,
    dispatcher: DispatcherDep,
    before: Dispute,
    after: Dispute,
    now: float,
) -> dict[str, Any]:
    if not store.record_dispute_response(before, after, _verdict_events(after)):
        raise PSPError(409, "dispute_not_open", "the dispute was answered meanwhile")
    dispatcher.wake()
    return after.view(now)


def _verdict_events(
    dispute: Dispute, verdict_id: str | None = None, stale_id: str | None = None
) -> list[Event]:
    """`dispute.won|lost` at `decided_at`; with `pm_duplicate_webhook`, twice then a stale one."""
    at = dispute.decided_at
    verdict = _event(dispute, verdict_id or _event_id(), f"dispute.{dispute.final_status}", at, 2)
    events = _repeated(dispute, [verdict])
    if _behaviour(dispute).duplicate_webhook:
        stale = _event(dispute, stale_id or _event_id(), "dispute.created", dispute.created_at, 1)
        events.append((stale[0], stale[1], at + STALE_EVENT_LAG_SECONDS))
    return events


def _repeated(dispute: Dispute, events: list[Event]) -> list[Event]:
    return events * 2 if _behaviour(dispute).duplicate_webhook else events


def _behaviour(dispute: Dispute) -> Behaviour:
    return TOKENS.get(dispute.method, Behaviour())


def _event(dispute: Dispute, event_id: str, kind: str, at: float, sequence: int) -> Event:
    """An event showing the dispute as it is at `at`, to be delivered at `at`."""
    event = {
        "id": event_id,
        "type": kind,
        "created": int(at),
        "sequence": sequence,
        "data": {"dispute": dispute.view(at)},
    }
    return event_id, json.dumps(event, separators=(",", ":")), at


def _event_id() -> str:
    return "evt_" + secrets.token_hex(12)
