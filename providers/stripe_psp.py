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

`status(idempotency_key)` finds the operation by its metadata (`providers/stripe_lookups.py` says
how, and when it answers `not_processed`).

Dispute events: Stripe's dispute object names the PaymentIntent, not paysaga's payment, and its
metadata is its own (empty). `parse_webhook` (no network) leaves `reference` and
`charge_idempotency_key` empty unless the dispute's metadata has them;
`complete_dispute_event` fills them from the PaymentIntent (one API call).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
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
    CapabilityAbsent,
    Outcome,
    ProviderConfigurationError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
    WebhookSignatureInvalid,
)
from providers.stripe_disputes import StripeDisputes
from providers.stripe_lookups import Uncertain, find, find_intent, list_pages
from providers.stripe_objects import (
    CHARGE_KEY_METADATA,
    KEY_METADATA,
    REFERENCE_METADATA,
    call_error,
    declined,
    intent_result,
    parse_event,
    provider_result,
    redirect,
    refund_result,
    settlement_lines,
)
from providers.stripe_objects import plain as _plain
from providers.webhooks import ProviderDisputeEvent, ProviderEvent

SIGNATURE_HEADER = "Stripe-Signature"
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


class StripeAdapter(StripeDisputes):
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
            intent = await find_intent(self._client, charge_idempotency_key)
        except (Uncertain, stripe.StripeError) as exc:
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
        return refund_result(self._name, _plain(refund))

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
            found = await find(self._client, idempotency_key)
        except Uncertain as exc:
            return self._result(Outcome.unknown, detail=f"no record proven absent: {exc}")
        except stripe.StripeError as exc:
            return self._result(Outcome.unknown, detail=f"status unavailable: {exc!r}")
        if found is None:
            return self._result(Outcome.not_processed, detail="no record of the key")
        if found["object"] == "refund":
            return refund_result(self._name, found)
        return self._intent_result(found)

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        """The 3-D Secure step of the charge: where to send the customer, or how it ended."""
        try:
            intent = await find_intent(self._client, idempotency_key)
        except Uncertain as exc:
            raise ProviderUnavailable(f"{self._name}: charge not found yet ({exc})") from exc
        except stripe.StripeError as exc:
            raise call_error(self._name, exc) from exc
        if intent is None:
            raise ProviderRequestRejected(self._name, 404, "charge_not_found")
        if intent["status"] == "requires_action" and redirect(intent, return_url) is None:
            # Confirmed without a return URL (the charge has none): confirm again with it.
            digest = hashlib.sha256(return_url.encode()).hexdigest()[:16]
            try:
                confirmed = await self._client.v1.payment_intents.confirm_async(
                    intent["id"],
                    {"return_url": return_url},
                    {"idempotency_key": f"{idempotency_key}:authenticate:{digest}"},
                )
            except stripe.StripeError as exc:
                raise call_error(self._name, exc) from exc
            intent = _plain(confirmed)
        return self._authentication(idempotency_key, intent, return_url)

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        """Cancel the PaymentIntent while it waits for its customer (`requires_action`); the
        PaymentIntent as it is afterwards (a customer faster than the cancel: as they left it)."""
        try:
            intent = await find_intent(self._client, idempotency_key)
        except (Uncertain, stripe.StripeError) as exc:
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
            url = redirect(intent, return_url)
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
            async for transaction in list_pages(
                self._client, "balance_transactions", params, pages=None
            ):
                lines.extend(settlement_lines(transaction))
        except (stripe.StripeError, Uncertain) as exc:
            raise ProviderUnavailable(f"{self._name} settlement report unavailable") from exc
        return lines

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
        return parse_event(self._name, body)

    # -- answers ---------------------------------------------------------------------------

    def _intent_result(self, intent: Mapping[str, Any]) -> ProviderResult:
        return intent_result(self._name, intent)

    def _declined(self, exc: stripe.CardError) -> ProviderResult:
        return declined(self._name, exc)

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

    def _result(
        self,
        outcome: Outcome,
        *,
        operation_id: str | None = None,
        decline_code: str | None = None,
        detail: str | None = None,
    ) -> ProviderResult:
        return provider_result(
            self._name, outcome, operation_id=operation_id, decline_code=decline_code, detail=detail
        )

    def _stripe_amount(self, amount: int, currency: str) -> int:
        if CURRENCY_EXPONENTS.get(currency) == 3 and amount % 10:
            raise ProviderRequestRejected(
                self._name,
                400,
                "amount_precision",
                f"Stripe takes {currency} amounts in multiples of 10 minor units",
            )
        return amount


def stripe_adapter(config: AdapterConfig) -> ProviderAdapter:
    """The `stripe` entry point: one Stripe account (`credentials["secret_key"]`)."""
    return StripeAdapter(config)
