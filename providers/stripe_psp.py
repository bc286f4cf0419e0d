"""The Stripe adapter: PaymentIntents, refunds, disputes and webhooks through the official SDK.

Registered as the `stripe` entry point; an account's `AdapterConfig` carries `endpoint` (a test
server's; empty for Stripe's own, `https://api.stripe.com`) and `credentials["secret_key"]`. Calls go
through `stripe.StripeClient` over the process's shared httpx client, with no retries of the
SDK's own: the sagas retry, with the same idempotency key.

What it does with Stripe's API:
- `charge`: `POST /v1/payment_intents` with `confirm=true` and the payment method, card only.
  The saga's key is Stripe's `Idempotency-Key` AND the PaymentIntent's metadata
  (`paysaga_idempotency_key`, with `paysaga_reference`): the header makes a retry one payment
  (for 24 hours: Stripe then forgets the key, and the same key would make a second payment),
  the metadata lets `status` find it. `requires_action` is `pending` (`requires_action=True`);
  `authenticate` then confirms it again with the customer's `return_url` and answers the
  `redirect_to_url`; a failed authentication (`payment_intent_authentication_failure`) is
  declined `authentication_failed`; `cancel_authorization` cancels a PaymentIntent still
  waiting for its customer (`POST /v1/payment_intents/{id}/cancel`).
- `refund`: `POST /v1/refunds` on the PaymentIntent its charge key names, key and metadata alike.
- `payout`: Stripe does not pay out to customers here: `payouts=False`, `CapabilityAbsent`.
- disputes: `GET|POST /v1/disputes/{id}` (evidence as `uncategorized_text`, submitted at once),
  `POST /v1/disputes/{id}/close` to accept; webhooks `charge.dispute.created|closed`.
- `settlement_report`: `GET /v1/balance_transactions`, each line in the payment's own amount and
  currency (the charge's, refund's, dispute's: Stripe's balance may be in another currency); a
  dispute's fee in the balance's currency. Processing fees are not reported, nor transactions of
  payments paysaga did not make (no `paysaga_reference` metadata), nor Stripe's payouts to the
  merchant's bank.
- webhooks: `Stripe-Signature` checked over the raw body by `stripe.WebhookSignature` (the
  time tolerance is checked here, both ways, against the `now` paysaga passes: the SDK's check
  reads the clock itself and only refuses old timestamps). Subscribe the endpoint to
  `payment_intent.succeeded|payment_intent.payment_failed|payment_intent.processing|
  payment_intent.requires_action|payment_intent.canceled`, `refund.created|refund.updated|
  refund.failed`, `charge.dispute.created|charge.dispute.closed`; others are `InvalidEvent`.

Amounts: Stripe counts in the currency's smallest unit, as paysaga does, with the same exponent
for every currency paysaga knows (JPY, KRW, CLP zero-decimal; BHD, JOD, KWD, OMR, TND three). For
three-decimal currencies Stripe takes only multiples of 10: other amounts are refused
(`ProviderRequestRejected`, `amount_precision`) before anything is sent.

Classification of a charge or refund call:
- succeeded / declined: Stripe's answer (402 `card_error` is a decline, the PaymentIntent stays
  `requires_payment_method` with its `last_payment_error`);
- rejected: 400/404 `invalid_request_error` (`ProviderRequestRejected`); a refused secret key
  (401/403) is a `ProviderConfigurationError`;
- not_processed: the connection was never made (refused, connect time-out), or 429 (Stripe
  rate-limits before executing) and `status` finds no record;
- unknown: anything after the request may have landed: a read time-out, a dropped connection,
  a 5xx (Stripe saves a 500 under the key, a retry replays it: only `status` tells), a 409 (the
  key's first request still executing), an unreadable answer.

`status(idempotency_key)`: Stripe has no lookup by idempotency key, so the operation is found by
its metadata, and "no record" (`not_processed`, on which the sagas fail over and would charge a
second time) must be certain. Stripe's search API is eventually consistent (usually under a
minute; "up to an hour behind during outages", Stripe's API reference), its list API is not
(Stripe: "use the list APIs for read-after-write flows"). So `status` reads:
1. PaymentIntents created in the last `SEARCH_LAG` (2 hours), listed and filtered by metadata
   here: everything search may not show yet;
2. search (`metadata['paysaga_idempotency_key']:'<key>'`) for anything older;
3. refunds (no search API) created in the last `REFUND_WINDOW` (25 hours: Stripe forgets an
   idempotency key after 24, so a refund key is not re-sent past it), listed and filtered.
It answers `not_processed` only if all three came back complete and empty; if a list is longer
than `LIST_PAGES_MAX` pages, or search fails (it is not offered in every country), `unknown`:
the saga polls again rather than fail over. Left open, as for any PSP: a request Stripe is still
executing when `status` reads may make its PaymentIntent after the read.

Dispute events: Stripe's dispute object names the PaymentIntent, not paysaga's payment, and its
metadata is its own (empty). `parse_webhook` (no network) leaves `reference` and
`charge_idempotency_key` empty unless the dispute's metadata has them;
`complete_dispute_event` fills them from the PaymentIntent (one API call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe

from domain.money import CURRENCY_EXPONENTS
from providers.adapter import (
    AdapterConfig,
    Capabilities,
    CustomerAuthentication,
    ProviderAdapter,
    header_value,
)
from providers.base import (
    AUTHENTICATION_FAILED,
    CapabilityAbsent,
    DisputeState,
    DisputeStatus,
    InvalidEvent,
    Outcome,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
    WebhookSignatureInvalid,
)
from providers.webhooks import ProviderDisputeEvent, ProviderEvent

SIGNATURE_HEADER = "Stripe-Signature"
KEY_METADATA = "paysaga_idempotency_key"
REFERENCE_METADATA = "paysaga_reference"
CHARGE_KEY_METADATA = "paysaga_charge_idempotency_key"
SEARCH_LAG = timedelta(hours=2)
REFUND_WINDOW = timedelta(hours=25)
LIST_PAGES_MAX = 10
PAGE_SIZE = 100

STRIPE_CAPABILITIES = Capabilities(
    methods=frozenset({"card"}),
    currencies=frozenset(CURRENCY_EXPONENTS),
    payouts=False,
    refunds=True,
    disputes=True,
    authentication=True,
)

# The exceptions below mean the request never left: nothing can have landed.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_INTENT_PENDING = {"processing", "requires_action", "requires_confirmation", "requires_capture"}
_REFUND_OUTCOMES = {
    "succeeded": Outcome.succeeded,
    "pending": Outcome.pending,
    "requires_action": Outcome.pending,
    "failed": Outcome.declined,
    "canceled": Outcome.declined,
}
_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.needs_response,
    "needs_response": DisputeStatus.needs_response,
    "warning_under_review": DisputeStatus.under_review,
    "under_review": DisputeStatus.under_review,
    "won": DisputeStatus.won,
    "warning_closed": DisputeStatus.won,  # an inquiry closed without a chargeback
    "prevented": DisputeStatus.won,
    "lost": DisputeStatus.lost,
    "charge_refunded": DisputeStatus.lost,
}
# A per-object order for events, from how far the object has come (Stripe gives none).
_PROGRESS = {Outcome.pending: 1, Outcome.succeeded: 2, Outcome.declined: 2}
_DISPUTE_PROGRESS = {
    DisputeStatus.needs_response: 1,
    DisputeStatus.under_review: 2,
    DisputeStatus.won: 3,
    DisputeStatus.lost: 3,
}


class _Uncertain(Exception):
    """A lookup that could not prove the absence of an operation."""


class SharedHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, over the process's shared `httpx.AsyncClient` instead of its own
    (one connection pool for every account; the process closes it)."""

    def __init__(self, http: httpx.AsyncClient, timeout_seconds: float) -> None:
        super().__init__(timeout=timeout_seconds)
        self._client_async = http  # the SDK's attribute (stripe 16); its own client is unused

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        # The SDK hands httpx the encoded form as `data=`, which httpx deprecates for raw text.
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs["content"] = kwargs.pop("data") or None
        return [args, kwargs]


class StripeAdapter:
    """One Stripe account, as a `ProviderAdapter`."""

    def __init__(self, config: AdapterConfig) -> None:
        secret_key = config.credentials.get("secret_key")
        if not secret_key:
            raise ProviderConfigurationError(f"{config.name}: no credentials['secret_key']")
        self._name = config.name
        self._client = stripe.StripeClient(
            secret_key,
            # No endpoint (an account's, in production): Stripe's own API.
            base_addresses={"api": config.endpoint.rstrip("/") or stripe.DEFAULT_API_BASE},
            max_network_retries=0,
            http_client=SharedHTTPXClient(config.http, config.timeout_seconds),
        )

    @property
    def name(self) -> str:
        """The account's name."""
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """Cards in every currency paysaga knows; refunds, disputes, 3-D Secure; no payouts."""
        return STRIPE_CAPABILITIES

    # -- payments --------------------------------------------------------------------------

    async def charge(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: str,
    ) -> ProviderResult:
        """Create and confirm a PaymentIntent; `requires_action` answers `pending`."""
        params: dict[str, Any] = {
            "amount": self._stripe_amount(amount, currency),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {KEY_METADATA: idempotency_key, REFERENCE_METADATA: reference},
        }
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        except stripe.StripeError as exc:
            return await self._failed(exc, idempotency_key)
        return self._intent_result(_plain(intent))

    async def refund(
        self,
        *,
        idempotency_key: str,
        reference: str,
        charge_idempotency_key: str,
        amount: int,
        currency: str,
    ) -> ProviderResult:
        """Refund (part of) the PaymentIntent made under `charge_idempotency_key`."""
        try:
            intent = await self._find_intent(charge_idempotency_key)
        except (_Uncertain, stripe.StripeError) as exc:
            # Nothing was sent: the charge is not visible yet, or the look-up failed.
            return self._result(Outcome.not_processed, detail=f"charge not found yet: {exc!r}")
        if intent is None:
            raise ProviderRequestRejected(self._name, 404, "charge_not_found")
        if intent["currency"] != currency.lower():
            # Stripe refunds in the charge's currency whatever we say: the amount would be wrong.
            raise ProviderRequestRejected(self._name, 400, "currency_mismatch")
        params: dict[str, Any] = {
            "payment_intent": intent["id"],
            "amount": self._stripe_amount(amount, currency),
            "metadata": {
                KEY_METADATA: idempotency_key,
                REFERENCE_METADATA: reference,
                CHARGE_KEY_METADATA: charge_idempotency_key,
            },
        }
        try:
            refund = await self._client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        except stripe.StripeError as exc:
            return await self._failed(exc, idempotency_key)
        return self._refund_result(_plain(refund))

    async def payout(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        destination: str,
    ) -> ProviderResult:
        """Stripe does not pay out to customers here: `CapabilityAbsent`, nothing sent."""
        raise CapabilityAbsent(f"{self._name} (Stripe) does not pay out to customers")

    async def status(self, idempotency_key: str) -> ProviderResult:
        """The operation made under the key, found by metadata (see the module docstring)."""
        try:
            found = await self._find(idempotency_key)
        except _Uncertain as exc:
            return self._result(Outcome.unknown, detail=f"no record proven absent: {exc}")
        except stripe.StripeError as exc:
            return self._result(Outcome.unknown, detail=f"status unavailable: {exc!r}")
        if found is None:
            return self._result(Outcome.not_processed, detail="no record of the key")
        if found["object"] == "refund":
            return self._refund_result(found)
        return self._intent_result(found)

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        """The 3-D Secure step of the charge: where to send the customer, or how it ended."""
        try:
            intent = await self._find_intent(idempotency_key)
        except _Uncertain as exc:
            raise ProviderUnavailable(f"{self._name}: charge not found yet ({exc})") from exc
        except stripe.StripeError as exc:
            raise self._call_error(exc) from exc
        if intent is None:
            raise ProviderRequestRejected(self._name, 404, "charge_not_found")
        if intent["status"] == "requires_action" and _redirect(intent, return_url) is None:
            # Confirmed without a return URL (the charge has none): confirm again with it.
            digest = hashlib.sha256(return_url.encode()).hexdigest()[:16]
            try:
                confirmed = await self._client.v1.payment_intents.confirm_async(
                    intent["id"],
                    {"return_url": return_url},
                    {"idempotency_key": f"{idempotency_key}:authenticate:{digest}"},
                )
            except stripe.StripeError as exc:
                raise self._call_error(exc) from exc
            intent = _plain(confirmed)
        return self._authentication(idempotency_key, intent, return_url)

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        """Cancel the PaymentIntent while it waits for its customer (`requires_action`); the
        PaymentIntent as it is afterwards (a customer faster than the cancel: as they left it)."""
        try:
            intent = await self._find_intent(idempotency_key)
        except (_Uncertain, stripe.StripeError) as exc:
            return self._result(Outcome.unknown, detail=f"charge not found yet: {exc!r}")
        if intent is None:
            return self._result(Outcome.not_processed, detail="no record of the key")
        if intent["status"] not in ("requires_action", "requires_confirmation"):
            return self._intent_result(intent)
        try:
            canceled = await self._client.v1.payment_intents.cancel_async(
                intent["id"],
                {"cancellation_reason": "abandoned"},
                {"idempotency_key": f"{idempotency_key}:cancel"},
            )
        except stripe.InvalidRequestError:
            return await self.status(idempotency_key)  # no longer cancellable: read it again
        except stripe.StripeError as exc:
            return self._result(Outcome.unknown, detail=f"cancel: {type(exc).__name__}")
        return self._intent_result(_plain(canceled))

    def _authentication(
        self, idempotency_key: str, intent: dict[str, Any], return_url: str
    ) -> CustomerAuthentication:
        outcome = self._intent_result(intent).outcome
        if intent["status"] == "requires_action":
            url = _redirect(intent, return_url)
            status = "required" if url else "failed"
            return CustomerAuthentication(self._name, idempotency_key, status, url)
        if outcome == Outcome.declined:
            return CustomerAuthentication(self._name, idempotency_key, "failed")
        return CustomerAuthentication(self._name, idempotency_key, "authenticated")

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        """Balance transactions in (since, until] as settlement lines (module docstring)."""
        created: dict[str, int] = {}
        if since is not None:
            created["gt"] = int(since.timestamp())
        if until is not None:
            created["lte"] = int(until.timestamp())
        params: dict[str, Any] = {"expand": ["data.source", "data.source.payment_intent"]}
        if created:
            params["created"] = created
        lines: list[SettlementLine] = []
        try:
            async for transaction in self._pages("balance_transactions", params, pages=None):
                lines.extend(_settlement_lines(transaction))
        except (stripe.StripeError, _Uncertain) as exc:
            raise ProviderUnavailable(f"{self._name} settlement report unavailable") from exc
        return lines

    # -- disputes --------------------------------------------------------------------------

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        """The dispute as Stripe shows it, with the disputed payment's reference."""
        try:
            dispute = await self._client.v1.disputes.retrieve_async(
                dispute_id, {"expand": ["payment_intent"]}
            )
        except stripe.StripeError as exc:
            raise self._call_error(exc) from exc
        return self._dispute_state(_plain(dispute))

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
            raise self._call_error(exc) from exc
        return self._dispute_state(_plain(dispute))

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        """Close (concede) the dispute: `lost` at once."""
        await self._open_dispute(dispute_id)
        try:
            dispute = await self._client.v1.disputes.close_async(
                dispute_id, {"expand": ["payment_intent"]}
            )
        except stripe.StripeError as exc:
            raise self._call_error(exc) from exc
        return self._dispute_state(_plain(dispute))

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

    def _dispute_state(self, dispute: dict[str, Any]) -> DisputeState:
        intent = dispute.get("payment_intent")
        metadata = (intent.get("metadata") or {}) if isinstance(intent, dict) else {}
        metadata = {**metadata, **(dispute.get("metadata") or {})}
        return DisputeState(
            provider=self._name,
            dispute_id=dispute["id"],
            reference=metadata.get(REFERENCE_METADATA, ""),
            charge_idempotency_key=metadata.get(KEY_METADATA, ""),
            status=_dispute_status(dispute["status"]),
            amount=int(dispute["amount"]),
            currency=str(dispute["currency"]).upper(),
            fee=_dispute_fee(dispute),
            reason=str(dispute.get("reason") or ""),
            evidence_due_by=_evidence_due_by(dispute),
            evidence_submitted_at=None,  # Stripe keeps a submission count, not a time
        )

    def _call_error(self, exc: stripe.StripeError) -> Exception:
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return ProviderConfigurationError(f"{self._name}: Stripe refused the secret key")
        if isinstance(exc, stripe.InvalidRequestError):
            status_code = exc.http_status or 400
            code = "dispute_not_found" if status_code == 404 else (exc.code or "invalid_request")
            return ProviderRequestRejected(self._name, status_code, code, exc.user_message or "")
        return ProviderUnavailable(f"{self._name}: Stripe did not answer ({type(exc).__name__})")

    # -- webhooks --------------------------------------------------------------------------

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        secret: str,
        now: int,
        tolerance_seconds: int,
    ) -> None:
        """Check `Stripe-Signature` over the raw body, and its timestamp against `now`."""
        header = header_value(headers, SIGNATURE_HEADER)
        timestamps = [
            part.strip()[2:] for part in header.split(",") if part.strip().startswith("t=")
        ]
        try:
            timestamp = int(timestamps[0])
        except (IndexError, ValueError) as exc:
            raise WebhookSignatureInvalid("malformed Stripe-Signature header") from exc
        if abs(now - timestamp) > tolerance_seconds:
            raise WebhookSignatureInvalid("signature timestamp outside the tolerance")
        try:
            # tolerance=None: the SDK would compare with its own clock; checked above instead.
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance=None)
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureInvalid("Stripe-Signature does not match") from exc
        except (UnicodeDecodeError, TypeError, ValueError) as exc:
            # A body that is not UTF-8, a signature with non-ASCII characters: forged.
            raise WebhookSignatureInvalid("Stripe-Signature does not match") from exc

    def parse_webhook(self, body: bytes) -> ProviderEvent | ProviderDisputeEvent:
        """A verified Stripe event as paysaga's (the types listed in the module docstring)."""
        try:
            event = json.loads(body)
            event_type = event["type"]
            obj = event["data"]["object"]
            if event_type.startswith("payment_intent."):
                return self._operation_event(event, "charge", self._intent_result(obj))
            if event_type.startswith("refund."):
                return self._operation_event(event, "refund", self._refund_result(obj))
            if event_type in ("charge.dispute.created", "charge.dispute.closed"):
                return self._dispute_event(event)
        except InvalidEvent:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise InvalidEvent(f"not a well-formed Stripe event: {exc!r}") from exc
        raise InvalidEvent(f"Stripe event type {event_type!r} is not one paysaga reads")

    def _operation_event(
        self, event: dict[str, Any], kind: str, result: ProviderResult
    ) -> ProviderEvent:
        obj = event["data"]["object"]
        metadata = obj.get("metadata") or {}
        if KEY_METADATA not in metadata or REFERENCE_METADATA not in metadata:
            raise InvalidEvent(f"Stripe {obj.get('object')} {obj.get('id')} is not paysaga's")
        if result.outcome not in _PROGRESS:
            raise InvalidEvent(f"Stripe event {event['id']} has no outcome")
        return ProviderEvent(
            id=str(event["id"]),
            type=str(event["type"]),
            created=int(event["created"]),
            sequence=_PROGRESS[result.outcome],
            provider=self._name,
            kind=kind,
            operation_id=str(obj["id"]),
            idempotency_key=str(metadata[KEY_METADATA]),
            reference=str(metadata[REFERENCE_METADATA]),
            status=result.outcome.value,
            amount=int(obj["amount"]),
            currency=str(obj["currency"]).upper(),
            decline_code=result.decline_code,
        )

    def _dispute_event(self, event: dict[str, Any]) -> ProviderDisputeEvent:
        state = self._dispute_state(event["data"]["object"])
        if event["type"] == "charge.dispute.created":
            event_type = "dispute.created"
        elif state.status.is_final:
            event_type = f"dispute.{state.status.value}"
        else:
            raise InvalidEvent(f"Stripe event {event['id']} closes a dispute still open")
        return ProviderDisputeEvent(
            id=str(event["id"]),
            type=event_type,
            created=int(event["created"]),
            sequence=_DISPUTE_PROGRESS[state.status],
            provider=self._name,
            dispute_id=state.dispute_id,
            reference=state.reference,
            charge_idempotency_key=state.charge_idempotency_key,
            amount=state.amount,
            currency=state.currency,
            fee=state.fee,
            reason=state.reason,
            status=state.status,
            evidence_due_by=state.evidence_due_by,
        )

    # -- look-ups --------------------------------------------------------------------------

    async def _find(self, idempotency_key: str) -> dict[str, Any] | None:
        """The PaymentIntent or refund made under the key; None only if certainly none."""
        uncertain: list[str] = []
        try:
            intent = await self._find_intent(idempotency_key)
        except _Uncertain as exc:
            intent, uncertain = None, [str(exc)]
        if intent is not None:
            return intent
        since = int(time.time() - REFUND_WINDOW.total_seconds())
        try:
            refund = await self._listed("refunds", since, idempotency_key)
        except _Uncertain as exc:
            refund, uncertain = None, [*uncertain, str(exc)]
        if refund is not None:
            return refund
        if uncertain:
            raise _Uncertain("; ".join(uncertain))
        return None

    async def _find_intent(self, idempotency_key: str) -> dict[str, Any] | None:
        """The PaymentIntent made under the key: recent ones listed, older ones searched."""
        since = int(time.time() - SEARCH_LAG.total_seconds())
        recent = await self._listed("payment_intents", since, idempotency_key)
        if recent is not None:
            return recent
        quoted = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
        query = f"metadata['{KEY_METADATA}']:'{quoted}'"
        try:
            found = await self._client.v1.payment_intents.search_async({"query": query})
        except (stripe.InvalidRequestError, stripe.PermissionError) as exc:
            raise _Uncertain(f"search refused: {exc.code or exc.http_status}") from exc
        for intent in found.data:
            plain = _plain(intent)
            if (plain.get("metadata") or {}).get(KEY_METADATA) == idempotency_key:
                return plain
        return None

    async def _listed(self, resource: str, since: int, key: str) -> dict[str, Any] | None:
        params = {"created": {"gte": since}}
        async for obj in self._pages(resource, params, pages=LIST_PAGES_MAX):
            if (obj.get("metadata") or {}).get(KEY_METADATA) == key:
                return obj
        return None

    async def _pages(
        self, resource: str, params: dict[str, Any], *, pages: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a list, newest first; `_Uncertain` past `pages` pages."""
        service = getattr(self._client.v1, resource)
        cursor: str | None = None
        for _ in range(pages) if pages is not None else itertools.count():
            page_params = {**params, "limit": PAGE_SIZE}
            if cursor is not None:
                page_params["starting_after"] = cursor
            page = await service.list_async(page_params)
            objects = [_plain(obj) for obj in page.data]
            for obj in objects:
                yield obj
            if not page.has_more or not objects:
                return
            cursor = objects[-1]["id"]
        raise _Uncertain(f"more than {pages} pages of {resource}")

    # -- answers ---------------------------------------------------------------------------

    def _intent_result(self, intent: Mapping[str, Any]) -> ProviderResult:
        status = intent["status"]
        if status == "succeeded":
            return self._result(Outcome.succeeded, operation_id=intent["id"])
        if status in _INTENT_PENDING:
            result = self._result(Outcome.pending, operation_id=intent["id"], detail=status)
            result.requires_action = status == "requires_action"
            return result
        error = intent.get("last_payment_error")
        if status == "canceled" or (status == "requires_payment_method" and error):
            decline = (error or {}).get("decline_code") or (error or {}).get("code") or status
            if decline == "payment_intent_authentication_failure":
                decline = AUTHENTICATION_FAILED
            return self._result(Outcome.declined, operation_id=intent["id"], decline_code=decline)
        return self._result(Outcome.pending, operation_id=intent["id"], detail=status)

    def _refund_result(self, refund: Mapping[str, Any]) -> ProviderResult:
        outcome = _REFUND_OUTCOMES.get(refund["status"], Outcome.pending)
        decline = refund.get("failure_reason") or refund["status"]
        return self._result(
            outcome,
            operation_id=refund["id"],
            decline_code=decline if outcome == Outcome.declined else None,
        )

    def _declined(self, exc: stripe.CardError) -> ProviderResult:
        body: Any = exc.json_body or {}
        error = body.get("error") or {}
        intent = error.get("payment_intent") or {}
        return self._result(
            Outcome.declined,
            operation_id=intent.get("id"),
            decline_code=error.get("decline_code") or exc.code or "card_declined",
        )

    async def _failed(self, exc: stripe.StripeError, idempotency_key: str) -> ProviderResult:
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            raise ProviderConfigurationError(
                f"{self._name}: Stripe refused the secret key ({exc.http_status})"
            ) from exc
        if isinstance(exc, stripe.RateLimitError):
            # Stripe rate-limits before executing; its books must agree before a failover.
            recorded = await self.status(idempotency_key)
            if recorded.outcome != Outcome.not_processed:
                return recorded
            return self._result(Outcome.not_processed, detail="429 rate_limit, no record")
        if isinstance(exc, stripe.IdempotencyError):
            # The key was used with other parameters: whatever it made is the answer.
            recorded = await self.status(idempotency_key)
            if recorded.outcome != Outcome.not_processed:
                return recorded
            return self._result(Outcome.unknown, detail="idempotency_error")
        if isinstance(exc, stripe.InvalidRequestError):
            raise ProviderRequestRejected(
                self._name,
                exc.http_status or 400,
                exc.code or "invalid_request_error",
                exc.user_message or "",
            ) from exc
        if isinstance(exc, stripe.APIConnectionError) and isinstance(exc.__cause__, _NOT_SENT):
            return self._result(Outcome.not_processed, detail=f"not sent: {exc.__cause__!r}")
        # A lost answer, a 5xx, a 409: the request may have landed.
        detail = f"{type(exc).__name__} {exc.http_status or ''}".strip()
        return self._result(Outcome.unknown, detail=detail)

    def _stripe_amount(self, amount: int, currency: str) -> int:
        if CURRENCY_EXPONENTS.get(currency) == 3 and amount % 10:
            raise ProviderRequestRejected(
                self._name,
                400,
                "amount_precision",
                f"Stripe takes {currency} amounts in multiples of 10 minor units",
            )
        return amount

    def _result(
        self,
        outcome: Outcome,
        *,
        operation_id: str | None = None,
        decline_code: str | None = None,
        detail: str | None = None,
    ) -> ProviderResult:
        return ProviderResult(self._name, outcome, operation_id, decline_code, detail)


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain dicts and lists (what the webhooks' JSON gives too)."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True)
    return dict(obj)


def _redirect(intent: Mapping[str, Any], return_url: str) -> str | None:
    action = intent.get("next_action") or {}
    redirect = action.get("redirect_to_url") or {}
    if action.get("type") == "redirect_to_url" and redirect.get("return_url") == return_url:
        return str(redirect["url"])
    return None


def _dispute_status(status: str) -> DisputeStatus:
    try:
        return _DISPUTE_STATUSES[status]
    except KeyError:
        raise InvalidEvent(f"Stripe dispute status {status!r} is not known") from None


def _dispute_fee(dispute: Mapping[str, Any]) -> int:
    return sum(
        int(transaction.get("fee") or 0)
        for transaction in dispute.get("balance_transactions") or []
        if isinstance(transaction, dict) and transaction.get("reporting_category") == "dispute"
    )


def _evidence_due_by(dispute: Mapping[str, Any]) -> str:
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    moment = datetime.fromtimestamp(int(due_by), UTC) if due_by else datetime.now(UTC)
    return moment.isoformat()


def _settlement_lines(transaction: Mapping[str, Any]) -> list[SettlementLine]:
    """A balance transaction as paysaga's lines (none if it is no payment of paysaga's)."""
    source = transaction.get("source")
    category = transaction.get("reporting_category")
    if not isinstance(source, dict):
        return []
    intent = source.get("payment_intent")
    if not isinstance(intent, dict):
        intent = {}
    metadata = {
        **(intent.get("metadata") or {}),
        **(source.get("metadata") or {}),
    }
    reference = metadata.get(REFERENCE_METADATA)
    if not reference:
        return []
    amount, currency = int(source["amount"]), str(source["currency"]).upper()
    if category == "charge" and "id" in intent:
        return [SettlementLine("charge", reference, amount, currency, str(intent["id"]))]
    if category == "refund":
        return [SettlementLine("refund", reference, amount, currency, str(source["id"]))]
    if category == "dispute":
        lines = [SettlementLine("dispute", reference, amount, currency, str(source["id"]))]
        fee = int(transaction.get("fee") or 0)
        if fee:
            fee_currency = str(transaction["currency"]).upper()
            lines.append(
                SettlementLine("dispute_fee", reference, fee, fee_currency, str(source["id"]))
            )
        return lines
    if category == "dispute_reversal":
        return [SettlementLine("dispute_reversal", reference, amount, currency, str(source["id"]))]
    return []


def stripe_adapter(config: AdapterConfig) -> ProviderAdapter:
    """The `stripe` entry point: one Stripe account (`credentials["secret_key"]`)."""
    return StripeAdapter(config)
