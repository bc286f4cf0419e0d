"""Merchant webhooks: a payment's status change POSTed to the merchant, signed, until it says 2xx.

An answer that says the request itself is wrong (a 4xx other than 408 and 429) is final: retrying
the same bytes cannot help, so the event goes to the dead-letter list at once. Anything else is
retried with backoff for up to three days (see workflows.merchant_notification).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.payments import MerchantEvent
from paysaga.notifications import DeadLetters
from paysaga.store import Store
from providers.webhooks import sign

SIGNATURE_HEADER = "Paysaga-Signature"
MERCHANT_REFUSED = "MerchantRefused"  # a final 4xx: not retried
MERCHANT_UNAVAILABLE = "MerchantUnavailable"  # 5xx, 408, 429: retried
RETRYABLE_4XX = (408, 429)


@dataclass
class DeadLetterInput:
    event: MerchantEvent
    reason: str


class MerchantActivities:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        url: str,
        secret: str,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._store = store
        self._http = http
        self._url = url
        self._secret = secret
        self._dead_letters = dead_letters or DeadLetters(store.pool)

    @activity.defn(name="merchant.notify")
    async def notify(self, event: MerchantEvent) -> int:
        """Deliver one event; any answer but 2xx raises (final for a 4xx but 408 and 429)."""
        payment = await self._store.get_payment(event.payment_id)
        if payment is None:
            raise RuntimeError(f"no payment {event.payment_id}")
        view = {
            key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in asdict(payment).items()
            if key != "details"
        }
        view |= {"status": event.status, "failure_code": event.failure_code}
        body = json.dumps(
            {
                "id": event.event_id,
                "type": f"payment.{event.status}",
                "created": int(time.time()),
                "data": {"payment": view},
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
        }
        response = await self._http.post(self._url, content=body, headers=headers, timeout=10)
        status = response.status_code
        if 200 <= status < 300:
            return status
        final = 400 <= status < 500 and status not in RETRYABLE_4XX
        raise ApplicationError(
            f"the merchant answered {status}",
            status,
            type=MERCHANT_REFUSED if final else MERCHANT_UNAVAILABLE,
            non_retryable=final,
        )

    @activity.defn(name="merchant.dead_letter")
    async def dead_letter(self, given_up: DeadLetterInput) -> None:
        """Park an event the merchant would not take, for an operator to redeliver."""
        event = given_up.event
        await self._dead_letters.record(
            event.event_id, event.payment_id, event.status, event.failure_code, given_up.reason
        )

    @activity.defn(name="merchant.redelivered")
    async def redelivered(self, event: MerchantEvent) -> None:
        """A redelivered event was taken: it leaves the dead-letter list."""
        await self._dead_letters.delivered(event.event_id)
