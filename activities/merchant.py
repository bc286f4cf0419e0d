"""Merchant webhooks: a payment's status change POSTed to the merchant, signed, until it says 2xx."""

from __future__ import annotations

import json
import time

import httpx
from temporalio import activity

from domain.payments import MerchantEvent
from paysaga.store import Store
from providers.webhooks import sign

SIGNATURE_HEADER = "Paysaga-Signature"


class MerchantActivities:
    def __init__(self, store: Store, http: httpx.AsyncClient, url: str, secret: str) -> None:
        self._store = store
        self._http = http
        self._url = url
        self._secret = secret

    @activity.defn(name="merchant.notify")
    async def notify(self, event: MerchantEvent) -> int:
        """Deliver one event; any answer but 2xx raises, and Temporal retries with backoff."""
        payment = await self._store.get_payment(event.payment_id)
        if payment is None:
            raise RuntimeError(f"no payment {event.payment_id}")
        view = {
            key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in payment.items()
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
        response.raise_for_status()
        return response.status_code
