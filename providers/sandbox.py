"""The sandbox PSP adapter over httpx: HTTP answers and transport errors become `Outcome`s.

Dispute calls have no `Outcome`: they answer a `DisputeState` or raise (`ProviderRequestRejected`
for a 4xx refusal, `ProviderUnavailable` for network trouble, 429 and 5xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from domain.money import CURRENCY_EXPONENTS
from providers.adapter import (
    AdapterConfig,
    Capabilities,
    CustomerAuthentication,
    ProviderAdapter,
    header_value,
)
from providers.base import (
    SETTLEMENT_DIRECTIONS,
    DisputeState,
    DisputeStatus,
    Outcome,
    ProviderConfigurationError,
    ProviderError,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
)
from providers.webhooks import (
    SIGNATURE_HEADER,
    ProviderDisputeEvent,
    ProviderEvent,
    parse_any_event,
    verify,
)

# Both sandbox providers take every token on every currency paysaga knows (failover needs it).
SANDBOX_CAPABILITIES = Capabilities(
    methods=frozenset({"card", "bank"}),
    currencies=frozenset(CURRENCY_EXPONENTS),
    payouts=True,
    refunds=True,
    disputes=True,
    authentication=True,
)

_STATUS_OUTCOMES = {
    "succeeded": Outcome.succeeded,
    "declined": Outcome.declined,
    "pending": Outcome.pending,
    "requires_action": Outcome.pending,  # waits for the customer (`authenticate`)
}


class SandboxProvider:
    """One provider (`sandbox-cards` or `sandbox-bank`) of the sandbox PSP at `base_url`."""

    def __init__(
        self, name: str, base_url: str, client: httpx.AsyncClient, timeout_seconds: float
    ) -> None:
        self._name = name
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._timeout = timeout_seconds

    @property
    def name(self) -> str:
        """The provider's name, as in webhook paths and settings."""
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """What the sandbox serves: everything, customer authentication included."""
        return SANDBOX_CAPABILITIES

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        """The authentication page of a charge that waits for its customer (3-D Secure for a
        card, the bank's approval for `pm_bank_redirect`), or how it ended."""
        url = f"{self._charge_url(idempotency_key)}/authentication"
        try:
            response = await self._client.post(
                url, json={"return_url": return_url}, timeout=self._timeout
            )
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self._name} authentication: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"{self._name} answered {response.status_code}")
        if response.status_code >= 400:
            self._reject(response)
        try:
            body = response.json()
            return CustomerAuthentication(
                self._name, idempotency_key, str(body["status"]), body.get("url")
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"{self._name} sent an unreadable authentication") from exc

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        """Cancel a charge still waiting for its customer; the charge as it is afterwards."""
        try:
            response = await self._client.post(
                f"{self._charge_url(idempotency_key)}/cancel", timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return self._result(Outcome.unknown, detail=f"not sent: {exc!r}")
        except httpx.TransportError as exc:
            return self._result(Outcome.unknown, detail=f"no answer: {exc!r}")
        if response.status_code == 404 and _error_code(response) == "operation_not_found":
            return self._result(Outcome.not_processed, detail="operation_not_found")
        result = self._interpret(response)
        if result.outcome == Outcome.not_processed:  # 429/503: nothing cancelled yet
            return self._result(Outcome.unknown, detail=result.detail)
        return result

    def _charge_url(self, idempotency_key: str) -> str:
        return f"{self._base_url}/{self._name}/charges/{quote(idempotency_key, safe='')}"

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        secret: str,
        now: int,
        tolerance_seconds: int,
    ) -> None:
        """Check the `Sandbox-Signature` header (HMAC-SHA256 over `timestamp.body`)."""
        signature = header_value(headers, SIGNATURE_HEADER)
        verify(secret, signature, body, now=now, tolerance_seconds=tolerance_seconds)

    def parse_webhook(self, body: bytes) -> ProviderEvent | ProviderDisputeEvent:
        """An operation's or a dispute's event, as `providers.webhooks` reads them."""
        return parse_any_event(body)

    async def charge(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: str,
    ) -> ProviderResult:
        """Charge a payment method; usually `pending` until the webhook or a poll says more."""
        body = {
            "idempotency_key": idempotency_key,
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method,
        }
        return await self._create("charges", body)

    async def refund(
        self,
        *,
        idempotency_key: str,
        reference: str,
        charge_idempotency_key: str,
        amount: int,
        currency: str,
    ) -> ProviderResult:
        """Refund (part of) a succeeded charge, named by the charge's idempotency key."""
        body = {
            "idempotency_key": idempotency_key,
            "reference": reference,
            "charge_idempotency_key": charge_idempotency_key,
            "amount": amount,
            "currency": currency,
        }
        return await self._create("refunds", body)

    async def payout(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        destination: str,
    ) -> ProviderResult:
        """Pay out to a destination account; usually `pending` until the webhook or a poll."""
        body = {
            "idempotency_key": idempotency_key,
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "destination": destination,
        }
        return await self._create("payouts", body)

    async def status(self, idempotency_key: str) -> ProviderResult:
        """The operation's current outcome; `not_processed` if the PSP never recorded the key."""
        url = f"{self._base_url}/{self._name}/operations/{quote(idempotency_key, safe='')}"
        try:
            response = await self._client.get(url, timeout=self._timeout)
        except httpx.TransportError as exc:
            # A failed read of the status says nothing about the operation itself.
            return self._result(Outcome.unknown, detail=f"status unavailable: {exc!r}")
        if response.status_code == 404 and _error_code(response) == "operation_not_found":
            return self._result(Outcome.not_processed, detail="operation_not_found")
        return self._interpret(response)

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        """The lines the PSP settled in (since, until], for reconciliation with our ledger."""
        url = f"{self._base_url}/{self._name}/settlement-report"
        window = {
            name: bound.isoformat()
            for name, bound in (("since", since), ("until", until))
            if bound is not None
        }
        try:
            response = await self._client.get(url, params=window, timeout=self._timeout * 4)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self._name} settlement report unavailable: {exc!r}") from exc
        lines = [
            SettlementLine(
                line["kind"], line["reference"], line["amount"], line["currency"], line["id"]
            )
            for line in response.json()["data"]
        ]
        unknown = {line.kind for line in lines} - SETTLEMENT_DIRECTIONS.keys()
        if unknown:
            # Better no reconciliation than one that miscounts money it does not understand.
            raise ProviderError(f"{self._name} settlement report has unknown kinds {unknown}")
        return lines

    async def submit_dispute_evidence(self, dispute_id: str, text: str) -> DisputeState:
        """Contest an open dispute; 409 `dispute_not_open` (rejected) once it was answered."""
        return await self._dispute_call("POST", dispute_id, "/evidence", {"text": text})

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        """Accept an open dispute: `lost` at once; 409 `dispute_not_open` once it was answered."""
        return await self._dispute_call("POST", dispute_id, "/accept", {})

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        """The dispute's current state (404 `dispute_not_found`, rejected, if the PSP has none)."""
        return await self._dispute_call("GET", dispute_id, "", None)

    async def _dispute_call(
        self, method: str, dispute_id: str, action: str, body: dict[str, Any] | None
    ) -> DisputeState:
        url = f"{self._base_url}/{self._name}/disputes/{quote(dispute_id, safe='')}{action}"
        try:
            response = await self._client.request(method, url, json=body, timeout=self._timeout)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self._name} dispute call failed: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(
                f"{self._name} answered {response.status_code} {_error_code(response)}"
            )
        if response.status_code >= 400:
            self._reject(response)
        try:
            return self._dispute_state(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"{self._name} sent an unreadable dispute") from exc

    def _dispute_state(self, dispute: dict[str, Any]) -> DisputeState:
        return DisputeState(
            provider=self._name,
            dispute_id=str(dispute["id"]),
            reference=str(dispute["reference"]),
            charge_idempotency_key=str(dispute["charge_idempotency_key"]),
            status=DisputeStatus(dispute["status"]),
            amount=int(dispute["amount"]),
            currency=str(dispute["currency"]),
            fee=int(dispute["fee"]),
            reason=str(dispute["reason"]),
            evidence_due_by=str(dispute["evidence_due_by"]),
            evidence_submitted_at=dispute.get("evidence_submitted_at"),
        )

    async def _create(self, path: str, body: dict[str, Any]) -> ProviderResult:
        url = f"{self._base_url}/{self._name}/{path}"
        try:
            response = await self._client.post(url, json=body, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached the PSP.
            return self._result(Outcome.not_processed, detail=f"not sent: {exc!r}")
        except httpx.TransportError as exc:
            # Sent, but the answer was lost (read timeout, dropped connection): it may be done.
            return self._result(Outcome.unknown, detail=f"no answer: {exc!r}")
        result = self._interpret(response)
        if result.outcome == Outcome.not_processed:
            # A 503/429 should mean "not processed", but a PSP may have taken the request before
            # failing to answer: only its own books say so. Fail over only if it has no record.
            recorded = await self.status(body["idempotency_key"])
            if recorded.outcome != Outcome.not_processed:
                return recorded
        return result

    def _interpret(self, response: httpx.Response) -> ProviderResult:
        code = response.status_code
        if code in (429, 503):
            # Refused before processing (rate limited, unavailable): safe to retry or fail over.
            return self._result(Outcome.not_processed, detail=_error_code(response) or str(code))
        if code >= 500:
            return self._result(Outcome.unknown, detail=f"{code} {_error_code(response)}")
        if code >= 400:
            self._reject(response)
        try:
            operation = response.json()
            outcome = _STATUS_OUTCOMES[operation["status"]]
        except (ValueError, KeyError, TypeError):
            return self._result(Outcome.unknown, detail=f"unreadable {code} answer")
        result = self._result(
            outcome,
            operation_id=operation.get("id"),
            decline_code=operation.get("decline_code"),
        )
        result.requires_action = operation["status"] == "requires_action"
        return result

    def _reject(self, response: httpx.Response) -> None:
        error = _error_code(response) or str(response.status_code)
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            if response.status_code == 404 and error == "unknown_provider":
                raise ProviderConfigurationError(
                    f"the sandbox PSP does not serve {self._name!r}"
                ) from exc
            raise ProviderRequestRejected(
                self._name, response.status_code, error, _error_message(response)
            ) from exc

    def _result(
        self,
        outcome: Outcome,
        *,
        operation_id: str | None = None,
        decline_code: str | None = None,
        detail: str | None = None,
    ) -> ProviderResult:
        return ProviderResult(self._name, outcome, operation_id, decline_code, detail)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_code(response: httpx.Response) -> str:
    return str(_error_body(response).get("error", ""))


def _error_message(response: httpx.Response) -> str:
    return str(_error_body(response).get("message", ""))


def sandbox_adapter(config: AdapterConfig) -> ProviderAdapter:
    """The `sandbox` entry point: the account's name is the sandbox provider's
    (`sandbox-cards`, `sandbox-bank`), the endpoint the sandbox PSP's URL."""
    return SandboxProvider(config.name, config.endpoint, config.http, config.timeout_seconds)
