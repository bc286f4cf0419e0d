"""The sandbox PSP's records: operations, disputes and webhook events as its store keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def isoformat(timestamp: float) -> str:
    """A unix time as an ISO 8601 UTC string."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Operation:
    """A charge, payout or refund. Its outcome is fixed at creation and shown at `settles_at`."""

    provider: str
    idempotency_key: str
    id: str
    kind: str
    request_hash: str
    reference: str
    amount: int
    currency: str
    method: str
    charge_idempotency_key: str | None
    final_status: str
    decline_code: str | None
    created_at: float
    settles_at: float

    def is_settled(self, now: float) -> bool:
        """Whether the final outcome is reached (and visible to polling) at `now`."""
        return now >= self.settles_at

    def view(self, now: float, *, settled: bool | None = None) -> dict[str, Any]:
        """The operation as the API and webhooks show it at `now` (or forced settled or not)."""
        if settled is None:
            settled = self.is_settled(now)
        return {
            "id": self.id,
            "kind": self.kind,
            "provider": self.provider,
            "idempotency_key": self.idempotency_key,
            "reference": self.reference,
            "amount": self.amount,
            "currency": self.currency,
            "method": self.method,
            "status": self.final_status if settled else "pending",
            "decline_code": self.decline_code if settled else None,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.settles_at if settled else self.created_at),
        }


@dataclass(frozen=True)
class Dispute:
    """A chargeback on a succeeded charge; its verdict is planted, its status a function of time.

    `decided_at` and `final_status` say when and how it closes: at planting, `lost` at
    `evidence_due_by` (no answer in time); after evidence, the planted outcome a decision delay
    later; after acceptance, `lost` at once. A response replaces the planned expiry.
    """

    provider: str
    id: str
    reference: str
    charge_id: str
    charge_idempotency_key: str
    method: str  # the charge's sandbox token: `pm_duplicate_webhook` duplicates dispute events too
    amount: int
    currency: str
    fee: int
    reason: str
    planted_outcome: str  # won or lost, once evidence is in
    created_at: float
    evidence_due_by: float
    responded_at: float | None
    response: str | None  # evidence or accept
    evidence_text: str | None
    decided_at: float
    final_status: str  # won or lost, shown from `decided_at`
    expiry_event_ids: str  # JSON list: the planned expiry's outbox events (a response drops them)

    def status(self, now: float) -> str:
        """`needs_response`, `under_review` (evidence in), then `won` or `lost`, at `now`."""
        if now >= self.decided_at:
            return self.final_status
        if self.responded_at is None or now < self.responded_at:
            return "needs_response"
        return "under_review"

    def view(self, now: float) -> dict[str, Any]:
        """The dispute as the API and webhooks show it at `now`."""
        status = self.status(now)
        updated_at = self.created_at if status == "needs_response" else self.decided_at
        if status == "under_review" and self.responded_at is not None:
            updated_at = self.responded_at
        submitted = self.responded_at if self.response == "evidence" else None
        return {
            "id": self.id,
            "provider": self.provider,
            "reference": self.reference,
            "charge_id": self.charge_id,
            "charge_idempotency_key": self.charge_idempotency_key,
            "amount": self.amount,
            "currency": self.currency,
            "fee": self.fee,
            "reason": self.reason,
            "status": status,
            "evidence_due_by": isoformat(self.evidence_due_by),
            "evidence_submitted_at": None if submitted is None else isoformat(submitted),
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(updated_at),
        }

    def settlement_lines(self) -> list[dict[str, Any]]:
        """Its settlement report rows (each with `settled_at` as a unix time), see the app."""

        def line(kind: str, amount: int, settled_at: float) -> dict[str, Any]:
            return {
                "id": self.id,
                "kind": kind,
                "idempotency_key": None,
                "reference": self.reference,
                "amount": amount,
                "currency": self.currency,
                "settled_at": settled_at,
            }

        lines = [line("dispute", self.amount, self.created_at)]
        if self.fee > 0:
            lines.append(line("dispute_fee", self.fee, self.created_at))
        if self.final_status == "won":
            lines.append(line("dispute_reversal", self.amount, self.decided_at))
        return lines


@dataclass(frozen=True)
class OutboxEvent:
    """A webhook event waiting for delivery (or delivered)."""

    seq: int
    event_id: str
    provider: str
    body: str
    attempts: int
