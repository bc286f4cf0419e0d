"""The Stripe adapter's disputes: read, answered with evidence, accepted; events completed.

Stripe's dispute object names the PaymentIntent, not paysaga's payment; its state as paysaga's
is `providers.stripe_objects.dispute_state`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import stripe

from providers.base import DisputeState, DisputeStatus, ProviderRequestRejected
from providers.stripe_objects import call_error, dispute_state, plain
from providers.webhooks import ProviderDisputeEvent


class StripeDisputes:
    """The dispute calls of a `StripeAdapter` (one Stripe account)."""

    _name: str
    _client: stripe.StripeClient

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        """The dispute as Stripe shows it, with the disputed payment's reference."""
        try:
            dispute = await self._client.v1.disputes.retrieve_async(
                dispute_id, {"expand": ["payment_intent"]}
            )
        except stripe.StripeError as exc:
            raise call_error(self._name, exc) from exc
        return dispute_state(self._name, plain(dispute))

    async def submit_dispute_evidence(self, dispute_id: str, text: str) -> DisputeState:
        """Submit `text` as the dispute's evidence: `under_review` until the verdict."""
        await self._open_dispute(dispute_id)
        params: dict[str, Any] = {
            "evidence": {"uncategorized_text": text},
            "submit": True,
            "expand": ["payment_intent"],
        }
        try:
            dispute = await self._client.v1.disputes.update_async(
                dispute_id,
                params,  # type: ignore[arg-type]
            )
        except stripe.StripeError as exc:
            raise call_error(self._name, exc) from exc
        return dispute_state(self._name, plain(dispute))

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        """Close (concede) the dispute: `lost` at once."""
        await self._open_dispute(dispute_id)
        try:
            dispute = await self._client.v1.disputes.close_async(
                dispute_id, {"expand": ["payment_intent"]}
            )
        except stripe.StripeError as exc:
            raise call_error(self._name, exc) from exc
        return dispute_state(self._name, plain(dispute))

    async def complete_dispute_event(self, event: ProviderDisputeEvent) -> ProviderDisputeEvent:
        """The event with the disputed payment's reference and charge key, read from Stripe
        when the dispute's own metadata lacked them (module docstring)."""
        if event.reference and event.charge_idempotency_key:
            return event
        state = await self.dispute_status(event.dispute_id)
        return dataclasses.replace(
            event, reference=state.reference, charge_idempotency_key=state.charge_idempotency_key
        )

    async def _open_dispute(self, dispute_id: str) -> None:
        state = await self.dispute_status(dispute_id)
        if state.status != DisputeStatus.needs_response:
            raise ProviderRequestRejected(self._name, 409, "dispute_not_open")
