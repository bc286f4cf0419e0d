"""An example paysaga adapter for one provider of the sandbox PSP, registered by entry point."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from providers.adapter import (
    AdapterConfig,
    Capabilities,
    CapabilityAbsent,
    CustomerAuthentication,
    DisputeState,
    InvalidEvent,
    Outcome,
    ProviderDisputeEvent,
    ProviderEvent,
    ProviderRequestRejected,
    ProviderResult,
    ProviderUnavailable,
    SettlementLine,
    WebhookSignatureInvalid,
    header_value,
)

CAPABILITIES = Capabilities(
    methods=frozenset({"card"}),
    currencies=frozenset({"EUR", "JPY", "KWD"}),
    refunds=True,
)
_OUTCOMES = {
    "succeeded": Outcome.succeeded,
    "declined": Outcome.declined,
    "pending": Outcome.pending,
}


def build_adapter(config: AdapterConfig) -> ExampleAdapter:
    """The entry point (`paysaga.providers`: `example`)."""
    return ExampleAdapter(config)


class ExampleAdapter:
    """Charges and refunds at `config.endpoint`, a sandbox PSP provider's base URL."""

    capabilities = CAPABILITIES

    def __init__(self, config: AdapterConfig) -> None:
        self._config = config
        self._endpoint = config.endpoint.rstrip("/")

    @property
    def name(self) -> str:
        return self._config.name

    async def charge(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: int,
        currency: str,
        payment_method: str,
    ) -> ProviderResult:
        body = {"amount": amount, "currency": currency, "payment_method": payment_method}
        return await self._create("charges", idempotency_key, reference, body)

    async def refund(
        self,
        *,
        idempotency_key: str,
        reference: str,
        charge_idempotency_key: str,
        amount: int,
        currency: str,
    ) -> ProviderResult:
        body = {
            "charge_idempotency_key": charge_idempotency_key,
            "amount": amount,
            "currency": currency,
        }
        return await self._create("refunds", idempotency_key, reference, body)

    async def payout(self, **_: Any) -> ProviderResult:
        raise CapabilityAbsent("the example PSP makes no payouts")

    async def status(self, idempotency_key: str) -> ProviderResult:
        try:
            response = await self._send("GET", f"operations/{quote(idempotency_key, safe='')}")
        except httpx.TransportError as exc:
            return self._result(Outcome.unknown, detail=repr(exc))
        if response.status_code == 404 and _error(response) == "operation_not_found":
            return self._result(Outcome.not_processed)
        return self._read(response)

    async def settlement_report(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SettlementLine]:
        window = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v}
        try:
            response = await self._send("GET", "settlement-report", params=window)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.name} settlement report: {exc!r}") from exc
        return [
            SettlementLine(
                line["kind"], line["reference"], line["amount"], line["currency"], line["id"]
            )
            for line in response.json()["data"]
        ]

    async def authenticate(
        self, *, idempotency_key: str, return_url: str
    ) -> CustomerAuthentication:
        raise CapabilityAbsent("the example PSP does not authenticate customers")

    async def cancel_authorization(self, idempotency_key: str) -> ProviderResult:
        raise CapabilityAbsent("the example PSP does not authenticate customers")

    async def submit_dispute_evidence(self, dispute_id: str, text: str) -> DisputeState:
        raise CapabilityAbsent("the example PSP has no dispute API")

    async def accept_dispute(self, dispute_id: str) -> DisputeState:
        raise CapabilityAbsent("the example PSP has no dispute API")

    async def dispute_status(self, dispute_id: str) -> DisputeState:
        raise CapabilityAbsent("the example PSP has no dispute API")

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        secret: str,
        now: int,
        tolerance_seconds: int,
    ) -> None:
        fields = dict(
            p.partition("=")[::2] for p in header_value(headers, "Sandbox-Signature").split(",")
        )
        if not fields.get("t", "").isdigit() or abs(now - int(fields["t"])) > tolerance_seconds:
            raise WebhookSignatureInvalid("missing or stale signature timestamp")
        expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest().encode(), fields.get("v1", "").encode()):
            raise WebhookSignatureInvalid("signature does not match")

    def parse_webhook(self, body: bytes) -> ProviderEvent | ProviderDisputeEvent:
        try:
            event = json.loads(body)
            operation = event["data"]["operation"]
            return ProviderEvent(
                id=event["id"],
                type=event["type"],
                created=int(event["created"]),
                sequence=int(event["sequence"]),
                provider=self.name,
                kind=operation["kind"],
                operation_id=operation["id"],
                idempotency_key=operation["idempotency_key"],
                reference=operation["reference"],
                status=_OUTCOMES[operation["status"]].value,
                amount=int(operation["amount"]),
                currency=operation["currency"],
                decline_code=operation.get("decline_code"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidEvent("not an example PSP event") from exc

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self._endpoint}/{path}"
        return await self._config.http.request(
            method, url, timeout=self._config.timeout_seconds, **kwargs
        )

    async def _create(
        self, path: str, idempotency_key: str, reference: str, body: dict[str, Any]
    ) -> ProviderResult:
        body = {"idempotency_key": idempotency_key, "reference": reference, **body}
        try:
            response = await self._send("POST", path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return self._result(Outcome.not_processed, detail=repr(exc))  # never sent
        except httpx.TransportError as exc:
            return self._result(Outcome.unknown, detail=repr(exc))  # sent: it may have landed
        if response.status_code in (429, 503):
            # Refused, says the PSP; only its books prove that nothing was recorded.
            return await self.status(idempotency_key)
        return self._read(response)

    def _read(self, response: httpx.Response) -> ProviderResult:
        if response.status_code >= 500:
            return self._result(Outcome.unknown, detail=str(response.status_code))
        if response.status_code >= 400:
            raise ProviderRequestRejected(self.name, response.status_code, _error(response))
        try:
            operation = response.json()
            outcome = _OUTCOMES[operation["status"]]
        except (ValueError, KeyError, TypeError):
            return self._result(Outcome.unknown, detail="unreadable answer")
        return ProviderResult(
            self.name, outcome, operation.get("id"), operation.get("decline_code")
        )

    def _result(self, outcome: Outcome, detail: str | None = None) -> ProviderResult:
        return ProviderResult(self.name, outcome, detail=detail)


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.status_code))
    except (ValueError, AttributeError):
        return str(response.status_code)
